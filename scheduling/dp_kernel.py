"""The day-by-day pass of `person_dp`, compiled: one volunteer's best schedule per row of
priced gains, by the same states and transitions as the numpy pass, as plain loops.

The numpy pass spends most of its time in the overhead of some forty array operations per day
(about 40-100 ms a pass on a 364-day horizon, so re-planning one volunteer on Curtois
Instance23 took about a second); here a day costs what its states cost. The structure of the
volunteer's days (the classes of each day's shifts, which classes may precede which shifts, the
weekend days) is flattened once into `Layout`; `solve` runs every row of a batch against it.

States after day d: working, in class c of that day's shift, on day j + 1 of a run (j < cap,
the cap meaning "at least" when there is no maximum run); or off on day j + 1 of a run of
days off. Transitions and the horizon-edge exemptions are those of `person_dp.PersonDP`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, cast

import numpy as np
from numba import njit, types

if TYPE_CHECKING:
    from scheduling.person_dp import PersonDP

NEG = -1e30
HALF_NEG = NEG / 2


_A = np.ndarray
# A Layout's fields in order: six counts, then eleven arrays.
LayoutArgs = tuple[int, int, int, int, int, int, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A]


@dataclass(frozen=True, slots=True)
class Layout:
    """One volunteer's days, flattened (see `person_dp.PersonDP.layout`).

    Per day d, positions order_start[d]..order_start[d+1] of the flat arrays are the day's
    candidate shifts in class order: `order` (candidate index), `klass` (class on that day) and
    `pattern` (which column of the previous day's `allowed` block applies to it). The block
    for the step into day d holds classes[d-1] x patterns[d] booleans from allow_start[d]."""

    days: int
    cap_work: int
    cap_off: int
    max_run: int  # -1: no maximum
    min_run: int
    min_off: int
    order_start: np.ndarray
    order: np.ndarray
    klass: np.ndarray
    pattern: np.ndarray
    classes: np.ndarray
    patterns: np.ndarray
    allow_start: np.ndarray
    allow: np.ndarray
    weekend: np.ndarray
    same_weekend: np.ndarray
    must_work: np.ndarray

    def args(self) -> LayoutArgs:
        """The fields in order, as the compiled passes take them (`LAYOUT_TYPES`)."""
        return cast(LayoutArgs, tuple(getattr(self, f.name) for f in fields(self)))


def solve(layout: Layout, gains: np.ndarray, weekend_price: np.ndarray) -> np.ndarray | None:
    """Per row of `gains` (rows, candidates) and `weekend_price` (rows, days), the chosen
    candidate per day or -1; None when some row has no schedule that keeps the sequence rules.
    """
    plan = np.full((gains.shape[0], layout.days), -1, dtype=np.int64)
    ok = _solve(
        np.ascontiguousarray(gains, dtype=np.float64),
        np.ascontiguousarray(weekend_price, dtype=np.float64),
        *layout.args(),
        plan,
    )
    return plan if ok else None


_INT = types.int64
_INTS = types.int64[::1]
_FLAGS = types.boolean[::1]
_FLOATS_2D = types.float64[:, ::1]

# The signature is given so that the kernel is compiled (or read from numba's cache) when this
# module is imported, never inside a solve: the first compile takes 7-20 s, and a caller's time
# limit must not pay for it (a 5-s sequential start found nothing on a fresh CI machine).
# A Layout's fields, in order, as the compiled passes (here and in `labelling`) take them.
LAYOUT_TYPES = (
    _INT,  # days
    _INT,  # cap_work
    _INT,  # cap_off
    _INT,  # max_run
    _INT,  # min_run
    _INT,  # min_off
    _INTS,  # order_start
    _INTS,  # order
    _INTS,  # klass
    _INTS,  # pattern
    _INTS,  # classes
    _INTS,  # patterns
    _INTS,  # allow_start
    _FLAGS,  # allow
    _FLAGS,  # weekend
    _FLAGS,  # same_weekend
    _FLAGS,  # must_work
)
_SIGNATURE = types.boolean(
    _FLOATS_2D,  # gains
    _FLOATS_2D,  # weekend_price
    *LAYOUT_TYPES,
    types.int64[:, ::1],  # plan
)


@njit(_SIGNATURE, cache=True, nogil=True)
def _solve(
    gains: np.ndarray,
    weekend_price: np.ndarray,
    days: int,
    cw: int,
    co: int,
    max_run: int,
    min_run: int,
    min_off: int,
    order_start: np.ndarray,
    order: np.ndarray,
    klass: np.ndarray,
    pattern: np.ndarray,
    classes: np.ndarray,
    patterns: np.ndarray,
    allow_start: np.ndarray,
    allow: np.ndarray,
    weekend: np.ndarray,
    same_weekend: np.ndarray,
    must_work: np.ndarray,
    plan: np.ndarray,
) -> bool:
    rows = gains.shape[0]
    most_classes = max(1, classes.max()) if days else 1
    most_patterns = max(1, patterns.max()) if days else 1
    off_base = most_classes * cw  # state ids: work c * cw + j, off off_base + j
    work = np.full((most_classes, cw), NEG)
    new_work = np.full((most_classes, cw), NEG)
    off = np.full(co, NEG)
    new_off = np.full(co, NEG)
    best = np.full((most_patterns, cw), NEG)
    source = np.zeros((most_patterns, cw), dtype=np.int64)
    back_work = np.zeros((days, most_classes, cw), dtype=np.int64)
    took = np.zeros((days, most_classes, cw), dtype=np.int64)
    back_off = np.zeros((days, co), dtype=np.int64)
    for r in range(rows):
        work[:, :] = NEG
        off[:] = NEG
        previous_classes = 0
        for d in range(days):
            price = weekend_price[r, d] if weekend[d] else 0.0
            # Starting a run today: from the best day off after which work may start.
            if d == 0:
                start, start_state = 0.0, -1
            else:
                start, start_state = NEG, -1
                for j in range(co):
                    if (j + 1 >= min_off or j + 1 == d) and off[j] > start:
                        start, start_state = off[j], off_base + j
            start -= price
            # Going on from yesterday's work: per pattern, the best class allowed before it.
            n_patterns = patterns[d]
            if previous_classes:
                base = allow_start[d]
                for p in range(n_patterns):
                    for j in range(cw):
                        best[p, j] = NEG
                    for c in range(previous_classes):
                        if allow[base + c * n_patterns + p]:
                            for j in range(cw):
                                if work[c, j] > best[p, j]:
                                    best[p, j] = work[c, j]
                                    source[p, j] = c * cw + j
            going_on = price if not same_weekend[d] else 0.0
            n_classes = classes[d]
            for c in range(n_classes):
                for j in range(cw):
                    new_work[c, j] = NEG
            for k in range(order_start[d], order_start[d + 1]):
                i = order[k]
                c = klass[k]
                gain = gains[r, i]
                if start > HALF_NEG and start + gain > new_work[c, 0]:
                    new_work[c, 0] = start + gain
                    back_work[d, c, 0] = start_state
                    took[d, c, 0] = i
                if not previous_classes:
                    continue
                p = pattern[k]
                for j in range(cw):
                    value = best[p, j]
                    if value <= HALF_NEG:
                        continue
                    nj = j + 1
                    if nj >= cw:
                        if max_run >= 0:
                            continue
                        nj = cw - 1
                    if max_run >= 0 and nj + 1 > max_run:
                        continue
                    value = value - going_on + gain
                    if value > new_work[c, nj]:
                        new_work[c, nj] = value
                        back_work[d, c, nj] = source[p, j]
                        took[d, c, nj] = i
            # Off today: after a run of work long enough to end (or leading), or going on.
            for j in range(co):
                new_off[j] = NEG
            if d == 0:
                new_off[0] = 0.0
                back_off[d, 0] = -1
            else:
                for c in range(previous_classes):
                    for j in range(cw):
                        if (j + 1 >= min_run or j + 1 == d) and work[c, j] > new_off[0]:
                            new_off[0] = work[c, j]
                            back_off[d, 0] = c * cw + j
                for j in range(co - 1):
                    if off[j] > new_off[j + 1]:
                        new_off[j + 1] = off[j]
                        back_off[d, j + 1] = off_base + j
                if off[co - 1] > new_off[co - 1]:
                    new_off[co - 1] = off[co - 1]
                    back_off[d, co - 1] = off_base + co - 1
            if must_work[d]:
                for j in range(co):
                    new_off[j] = NEG
            for c in range(n_classes):
                for j in range(cw):
                    work[c, j] = new_work[c, j]
            for j in range(co):
                off[j] = new_off[j]
            previous_classes = n_classes
        # The best final state, then back through the days.
        final, state = NEG, -1
        for c in range(previous_classes):
            for j in range(cw):
                if work[c, j] > final:
                    final, state = work[c, j], c * cw + j
        for j in range(co):
            if off[j] > final:
                final, state = off[j], off_base + j
        if final <= HALF_NEG:
            return False
        for d in range(days - 1, -1, -1):
            if state >= off_base:
                plan[r, d] = -1
                state = back_off[d, state - off_base]
            else:
                c, j = state // cw, state % cw
                plan[r, d] = took[d, c, j]
                state = back_work[d, c, j]
    return True


def layout_of(dp: PersonDP) -> Layout:
    """Flatten the day structure a `PersonDP` built."""
    days = dp.days
    sizes = np.array([len(order) for order in dp.order], dtype=np.int64)
    order_start = np.zeros(days + 1, dtype=np.int64)
    np.cumsum(sizes, out=order_start[1:])
    total = int(order_start[-1])
    order = np.concatenate([*dp.order, np.zeros(0, np.int64)]).astype(np.int64)
    klass = np.zeros(total, dtype=np.int64)
    pattern = np.zeros(total, dtype=np.int64)
    classes = np.array([pad.shape[0] for pad in dp.pad], dtype=np.int64)
    patterns = np.zeros(days, dtype=np.int64)
    allow_start = np.zeros(days, dtype=np.int64)
    blocks: list[np.ndarray] = []
    offset = 0
    for d in range(days):
        first, pad = int(order_start[d]), dp.pad[d]
        # The day's shifts are in class order, each class a run of positions (`pad`'s rows).
        per_class = (pad < sizes[d]).sum(1)
        klass[first : first + sizes[d]] = np.repeat(np.arange(len(per_class)), per_class)
        if d:
            allowed = dp.allowed[d - 1] > HALF_NEG  # (classes of d - 1, patterns of d)
            patterns[d] = allowed.shape[1]
            allow_start[d] = offset
            blocks.append(allowed.reshape(-1))
            offset += allowed.size
            pattern[first : first + sizes[d]] = dp.column[d - 1][: sizes[d]]
    return Layout(
        days=days,
        cap_work=dp.cap_work,
        cap_off=dp.cap_off,
        max_run=-1 if dp.max_run is None else int(dp.max_run),
        min_run=int(dp.min_run),
        min_off=int(dp.min_off),
        order_start=order_start,
        order=order,
        klass=klass,
        pattern=pattern,
        classes=classes,
        patterns=patterns,
        allow_start=allow_start,
        allow=np.concatenate([*blocks, np.zeros(0, bool)]).astype(np.bool_),
        weekend=np.ascontiguousarray(dp.weekend_of >= 0, dtype=np.bool_),
        same_weekend=np.ascontiguousarray(dp.same_weekend_as_before, dtype=np.bool_),
        must_work=np.ascontiguousarray(dp.must_work, dtype=np.bool_),
    )
