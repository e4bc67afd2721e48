"""One volunteer's best schedule, exactly: labelling over days with the resource rules as
resources, not prices.

`person_dp`'s search keeps the sequence rules in its state and prices the resource rules
(total minutes, the per-kind and weekly caps, weekends) by Lagrangian multipliers, so it may
miss the best schedule; column generation then fell back to CP-SAT on the volunteer alone,
which took about 57 ms a call on Curtois Instance8 and most of the column generation's time.
Here every partial schedule is a label: its sequence state (the same states as `dp_kernel`:
the class of the day's shift and the run's length, or the run of days off), its gain, its
minutes, what it has used of each cap and how many weekends it has worked. A label is dropped
- when it breaks a cap, or can no longer reach the minimum minutes;
- when another label in the same state dominates it: worth at least as much, needing no more
  minutes to reach the minimum, and with at least as much room on every limit, room counted
  only as far as the days left could use it (late in the horizon most limits cannot bind);
- when even the most the days left could add cannot lift it above `floor` (the best schedule
  known, or what a column must be worth to enter): the best r days' best gains for the r
  shifts it may still take, and Lagrangian bounds, the sequence rules solved backwards with
  the resources priced (multipliers from the search, from the last labelling of the same
  volunteer, sharpened by subgradient steps; the minutes' price negative where it prices the
  minimum).
It first searches above a floor just below the root's bound (few labels survive; the best
schedule is usually there), and lowers it to the caller's only when that finds nothing.

The result is exact for the rules the state and resources model: one shift a day at most
(exact where `one_shift_per_day` holds), the sequence rules as `dp_kernel` models them, and
the resources above. The caller checks what comes out against the checker as it does for the
search's schedules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit, types

from scheduling import dp_kernel

if TYPE_CHECKING:
    from scheduling.person_dp import Multipliers, PersonDP

NEG = -1e30
NEG_INF = -np.inf
# Labels a search may hold in all before it gives up (None: the caller falls back). A Curtois
# week-of-four volunteer holds a few thousand.
MOST_LABELS = 2_000_000
# Floors tried before the caller's, as shares of the bound below it.
RAISED_FLOORS = (0.02, 0.1)
# Subgradient steps on the Lagrangian bound per search.
DESCENT_STEPS = 25


@dataclass(frozen=True, slots=True)
class Resources:
    """One volunteer's resource rules, as integers over their candidates."""

    minutes: np.ndarray  # per candidate
    min_minutes: int  # 0: none
    max_minutes: int  # -1: none
    coef: np.ndarray  # (caps, candidates): what each candidate uses of each cap
    cap: np.ndarray  # (caps,)
    max_weekends: int  # -1: none
    names: tuple[str, ...]  # the caps' names, as `Multipliers.caps` keys them

    @classmethod
    def of(cls, dp: PersonDP) -> Resources | None:
        """The volunteer's resources, or None where one is not whole minutes or counts."""
        minutes = dp.minutes
        coef = dp.caps.coef
        cap = dp.caps.cap
        if not _whole(minutes) or not _whole(coef) or not _whole(cap):
            return None
        return cls(
            minutes=np.ascontiguousarray(minutes, dtype=np.int64),
            min_minutes=int(dp.min_minutes),
            max_minutes=-1 if dp.max_minutes is None else int(dp.max_minutes),
            coef=np.ascontiguousarray(coef, dtype=np.int64).reshape(len(cap), len(minutes)),
            cap=np.ascontiguousarray(cap, dtype=np.int64),
            max_weekends=-1 if dp.caps.weekends is None else int(dp.caps.weekends),
            names=tuple(dp.cap_names),
        )


@dataclass(frozen=True, slots=True)
class Labelled:
    """What a search found: the schedules (None when it gave up), and the multipliers of its
    sharpest bound (a start for the next search on similar gains)."""

    schedules: list[np.ndarray] | None
    multipliers: np.ndarray


def _settings(
    resources: Resources, day_best: np.ndarray, least_minutes: int, prices: Multipliers | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multiplier settings for the Lagrangian bounds (per minute, per unit of each cap, per
    weekend; none negative, none on a resource without a limit): around the search's prices,
    and a minute price at which the days beyond the most a volunteer may work are worth
    nothing."""
    rows: list[tuple[float, list[float], float]] = []
    n_caps = len(resources.cap)
    if resources.max_minutes >= 0:
        ranked = np.sort(day_best)[::-1]
        most = resources.max_minutes // least_minutes
        if most < len(ranked):
            per_minute = float(ranked[most]) / least_minutes
            rows.extend((per_minute * f, [0.0] * n_caps, 0.0) for f in (0.7, 1.0))
    if prices is not None:
        caps = prices.caps or {}
        lam = [max(0.0, caps.get(name, 0.0)) for name in resources.names]
        for f in (0.7, 1.0, 1.4):
            minutes = prices.minutes if resources.min_minutes > 0 else max(0.0, prices.minutes)
            rows.append((minutes * f, [x * f for x in lam], prices.weekend * f))
    mu = np.array([r[0] if resources.max_minutes >= 0 else min(0.0, r[0]) for r in rows])
    lam_rows = np.array([r[1] for r in rows], dtype=np.float64).reshape(len(rows), n_caps)
    lw = np.array([max(0.0, r[2]) if resources.max_weekends >= 0 else 0.0 for r in rows])
    return mu, np.ascontiguousarray(lam_rows), lw


def _descend(
    layout: dp_kernel.Layout,
    resources: Resources,
    gains: np.ndarray,
    start: np.ndarray,
    floor: float,
    least_minutes: int,
) -> tuple[float, np.ndarray]:
    """Subgradient descent on the Lagrangian bound from the multipliers `start` (per minute
    as per least shift's minutes, each cap, weekends): the least bound met and where. Each step
    is one pass of `dp_kernel` with the resources priced; Polyak's step towards `floor` (or
    towards a tenth below the bound when there is none)."""
    n_caps = len(resources.cap)
    # Bounds on the multipliers: the minutes' may be negative (pricing the minimum) where
    # there is a minimum, positive (the maximum) where there is a maximum.
    lowest = np.zeros(n_caps + 2)
    highest = np.full(n_caps + 2, np.inf)
    if resources.min_minutes > 0:
        lowest[0] = -np.inf
    if resources.max_minutes < 0:
        highest[0] = 0.0
    if resources.max_weekends < 0:
        highest[-1] = 0.0
    high = np.zeros(n_caps + 2)  # each resource's limit (the minutes' maximum)
    high[0] = max(0, resources.max_minutes) / least_minutes
    high[1 : n_caps + 1] = resources.cap
    high[-1] = max(0, resources.max_weekends)
    low_minutes = resources.min_minutes / least_minutes
    use = np.zeros((n_caps + 2, len(gains)))  # per candidate, what it uses (weekends apart)
    use[0] = resources.minutes / least_minutes
    use[1 : n_caps + 1] = resources.coef
    weekend = layout.weekend
    same = layout.same_weekend
    x = np.clip(start, lowest, highest)
    best_value, best_x = np.inf, x.copy()
    theta = 1.0
    for _ in range(DESCENT_STEPS):
        priced = gains - x[:-1] @ use[:-1]
        plan = dp_kernel.solve(layout, priced[None, :], np.full((1, layout.days), x[-1]))
        if plan is None:
            return NEG, x
        row = plan[0]
        on = row >= 0
        chosen = row[on]
        charged = on & weekend & ~(np.roll(on, 1) & same)
        if len(on):
            charged[0] = on[0] and weekend[0]
        limit = high.copy()
        if x[0] < 0.0:
            limit[0] = low_minutes
        value = float(priced[chosen].sum()) - x[-1] * int(charged.sum()) + float(x @ limit)
        if value < best_value:
            best_value, best_x = value, x.copy()
        else:
            theta *= 0.7
        used = use[:, chosen].sum(1)
        used[-1] = int(charged.sum())
        g = limit - used
        if x[0] == 0.0:  # the minutes' price moves only when the schedule leaves the window
            g[0] = min(0.0, high[0] - used[0]) if highest[0] > 0 else 0.0
            if resources.min_minutes > 0 and used[0] < low_minutes:
                g[0] = low_minutes - used[0]
        # Prices at their bound whose step would cross it stay there.
        g = np.where((x <= lowest) & (g > 0.0), 0.0, g)
        g = np.where((x >= highest) & (g < 0.0), 0.0, g)
        norm = float(g @ g)
        if norm == 0.0:
            break
        target = floor if floor > NEG / 2 else best_value - 0.1 * max(1.0, abs(best_value))
        gap = max(best_value - target, 0.01 * max(1.0, abs(best_value)))
        x = np.clip(x - theta * gap / norm * g, lowest, highest)
    return best_value, best_x


def _whole(values: np.ndarray) -> bool:
    return bool(np.all(np.asarray(values) == np.round(np.asarray(values))))


def best_schedules(
    layout: dp_kernel.Layout,
    resources: Resources,
    gains: np.ndarray,
    floor: float = NEG,
    most: int = 1,
    prices: Multipliers | None = None,
    warm: np.ndarray | None = None,
) -> Labelled:
    """Up to `most` schedules (candidate ids, ascending) worth more than `floor`, best first
    (`Labelled.schedules`): the first is the most valuable schedule that keeps the modelled
    rules, when it is worth more than `floor`; [] when none is; None when the labels outgrew
    MOST_LABELS. `prices`
    (the search's multipliers for the same gains) and `warm` (the multipliers of a search on
    similar gains, `Labelled.multipliers`) sharpen the bounds that drop labels."""
    days = layout.days
    gains = np.ascontiguousarray(gains, dtype=np.float64)
    # The most the days from d on can add, taking at most r more shifts: the r best days'
    # best gains (a day gives at most one shift).
    day_best = np.zeros(days + 1)
    day_minutes = np.zeros(days + 1, dtype=np.int64)
    for d in range(days):
        at = layout.order[layout.order_start[d] : layout.order_start[d + 1]]
        if len(at):
            day_best[d] = max(0.0, float(gains[at].max()))
            day_minutes[d] = int(resources.minutes[at].max())
    upper = np.zeros((days + 1, days + 1))
    for d in range(days):
        ranked = np.sort(day_best[d:days])[::-1]
        upper[d, 1 : len(ranked) + 1] = np.cumsum(ranked)
        upper[d, len(ranked) + 1 :] = upper[d, len(ranked)]
    reach = np.zeros(days + 1, dtype=np.int64)  # most minutes the days from d on can add
    reach[:days] = np.cumsum(day_minutes[:days][::-1])[::-1]
    least_minutes = int(resources.minutes.min()) if len(gains) else 1
    # The most of each cap, and the most weekends, the days from d on can use.
    n_caps = len(resources.cap)
    ahead = np.zeros((n_caps + 1, days + 1), dtype=np.int64)
    done, open_block = 0, False  # weekends wholly after d with a shift; the one at d has one
    for d in range(days - 1, -1, -1):
        at = layout.order[layout.order_start[d] : layout.order_start[d + 1]]
        most_used = resources.coef[:, at].max(1) if len(at) else np.zeros(n_caps, np.int64)
        ahead[:n_caps, d] = ahead[:n_caps, d + 1] + most_used
        joined = d + 1 < days and bool(layout.weekend[d]) and bool(layout.same_weekend[d + 1])
        if not joined:  # the weekend after d (if any) is closed
            done += open_block
            open_block = False
        if layout.weekend[d]:
            open_block = open_block or bool(len(at))
        ahead[n_caps, d] = done + open_block
    unit = max(1, least_minutes)
    mu, lam, lw = _settings(resources, day_best[:days], unit, prices)
    # The best of those settings, sharpened by subgradient steps, as one more.
    start = np.zeros(len(resources.cap) + 2)
    if warm is not None and len(warm) == len(start):
        start = warm
    elif len(mu):
        q = int(np.argmax(mu * unit + lam.sum(1) + lw))  # the dearest: a fair start
        start = np.concatenate([[mu[q] * unit], lam[q], [lw[q]]])
    _, x = _descend(layout, resources, gains, start, float(floor), unit)
    mu = np.append(mu, x[0] / unit)
    lam = np.ascontiguousarray(np.vstack([lam, x[1:-1][None, :]]))
    lw = np.append(lw, x[-1])
    plans = np.full((max(1, most), days), -1, dtype=np.int64)
    root = np.zeros(1)

    def run(at_floor: float, bound_only: bool) -> int:
        return _label(
            gains,
            resources.minutes,
            resources.min_minutes,
            resources.max_minutes,
            resources.coef,
            resources.cap,
            resources.max_weekends,
            upper,
            reach,
            ahead,
            max(1, least_minutes),
            mu,
            lam,
            lw,
            at_floor,
            *layout.args(),
            MOST_LABELS,
            bound_only,
            root,
            plans,
        )

    # Search above a floor near the bound first: where the best schedule is worth more, it is
    # found with far fewer labels kept; where nothing is, the floor comes down to the caller's.
    run(float(floor), True)
    bound = float(root[0])
    found = 0
    for share in RAISED_FLOORS:
        at_floor = max(float(floor), bound - share * max(1.0, abs(bound)))
        found = run(at_floor, False)
        if found != 0 or at_floor <= floor:
            break
    else:
        found = run(float(floor), False)
    if found < 0:
        return Labelled(None, x)
    return Labelled([np.sort(plans[r][plans[r] >= 0]) for r in range(found)], x)


@njit(cache=True, nogil=True)
def _grow_f(values: np.ndarray, size: int) -> np.ndarray:
    grown = np.empty(size)
    grown[: len(values)] = values
    return grown


@njit(cache=True, nogil=True)
def _grow_i(values: np.ndarray, size: int) -> np.ndarray:
    grown = np.empty(size, dtype=np.int64)
    grown[: len(values)] = values
    return grown


@njit(cache=True, nogil=True)
def _grow_2(values: np.ndarray, size: int) -> np.ndarray:
    grown = np.empty((size, values.shape[1]), dtype=np.int64)
    grown[: values.shape[0], :] = values
    return grown


@njit(cache=True, nogil=True)
def _priced_left(
    to_go: np.ndarray,
    d: int,
    st: int,
    m: int,
    row: np.ndarray,
    mu: np.ndarray,
    lam: np.ndarray,
    lw: np.ndarray,
    give_back: np.ndarray,
    cap: np.ndarray,
    max_weekends: int,
) -> float:
    """The least over the settings of what the days after d can still add to a label in state
    `st` with `m` minutes and `row` of the caps used (weekends last)."""
    best = NEG_INF
    n_caps = cap.shape[0]
    for q in range(mu.shape[0]):
        value = to_go[q, d, st] + give_back[q] - mu[q] * m
        for r in range(n_caps):
            value -= lam[q, r] * row[r]
        if max_weekends >= 0:
            value -= lw[q] * row[n_caps]
        if best == NEG_INF or value < best:
            best = value
    return best


@njit(cache=True, nogil=True)
def _to_go(
    priced: np.ndarray,
    lw: float,
    to_go: np.ndarray,
    days: int,
    cw: int,
    co: int,
    max_run: int,
    min_run: int,
    min_off: int,
    off_base: int,
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
) -> float:
    """Fill `to_go[d, state]`: the most the days after d add from a state at the end of day d,
    shifts worth `priced` and a worked weekend costing `lw`, by the sequence rules alone (the
    transitions of the forward pass, backwards). Returns the same from before the first day."""
    n_states = to_go.shape[1]
    for st in range(n_states):
        to_go[days - 1, st] = 0.0
    for d in range(days - 2, -2, -1):
        nd = d + 1
        n_patterns = patterns[nd]
        base = allow_start[nd]
        here = 1 if d < 0 else n_states
        for st in range(here):
            is_root = d < 0
            is_off = (not is_root) and st >= off_base
            if not is_root and not is_off and st // cw >= classes[d]:
                to_go[d, st] = NEG
                continue
            j = st - off_base if is_off else (st % cw if not is_root else 0)
            best = NEG
            if not must_work[nd]:
                if is_root:
                    ns = off_base
                elif is_off:
                    ns = off_base + min(j + 1, co - 1)
                elif j + 1 >= min_run or j + 1 == nd:
                    ns = off_base
                else:
                    ns = -1
                if ns >= 0 and to_go[nd, ns] > best:
                    best = to_go[nd, ns]
            may_start = is_root or (is_off and (j + 1 >= min_off or j + 1 == nd))
            for k in range(order_start[nd], order_start[nd + 1]):
                c = klass[k]
                if may_start:
                    nj = 0
                    charge = lw if weekend[nd] else 0.0
                else:
                    if is_off:
                        continue
                    if not allow[base + (st // cw) * n_patterns + pattern[k]]:
                        continue
                    nj = j + 1
                    if nj >= cw:
                        if max_run >= 0:
                            continue
                        nj = cw - 1
                    if max_run >= 0 and nj + 1 > max_run:
                        continue
                    charge = lw if (weekend[nd] and not same_weekend[nd]) else 0.0
                value = priced[order[k]] - charge + to_go[nd, c * cw + nj]
                if value > best:
                    best = value
            if is_root:
                return best
            to_go[d, st] = best
    return NEG


_INT = types.int64
_INTS = types.int64[::1]
_SIGNATURE = types.int64(
    types.float64[::1],  # gains
    _INTS,  # minutes
    _INT,  # min_minutes
    _INT,  # max_minutes
    types.int64[:, ::1],  # coef
    _INTS,  # cap
    _INT,  # max_weekends
    types.float64[:, ::1],  # upper
    _INTS,  # reach
    types.int64[:, ::1],  # ahead
    _INT,  # least_minutes
    types.float64[::1],  # mu
    types.float64[:, ::1],  # lam
    types.float64[::1],  # lw
    types.float64,  # floor
    *dp_kernel.LAYOUT_TYPES,
    _INT,  # most_labels
    types.boolean,  # bound_only
    types.float64[::1],  # root
    types.int64[:, ::1],  # plans
)


@njit(_SIGNATURE, cache=True, nogil=True)
def _label(
    gains: np.ndarray,
    minutes: np.ndarray,
    min_minutes: int,
    max_minutes: int,
    coef: np.ndarray,
    cap: np.ndarray,
    max_weekends: int,
    upper: np.ndarray,
    reach: np.ndarray,
    ahead: np.ndarray,
    least_minutes: int,
    mu: np.ndarray,
    lam: np.ndarray,
    lw: np.ndarray,
    floor: float,
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
    most_labels: int,
    bound_only: bool,
    root: np.ndarray,
    plans: np.ndarray,
) -> int:
    n_caps = cap.shape[0]
    width = n_caps + 1  # the caps used, then weekends worked
    most_classes = 1
    for d in range(days):
        if classes[d] > most_classes:
            most_classes = classes[d]
    off_base = most_classes * cw
    n_states = off_base + co
    # Lagrangian bounds: per multiplier setting, the most the days after d can add from each
    # state with the resources priced, plus what the prices of the resources left give back.
    settings = mu.shape[0]
    to_go = np.zeros((settings, days + 1, n_states))
    root_go = np.zeros(settings)
    priced = np.empty(len(gains))
    for q in range(settings):
        for i in range(len(gains)):
            value = gains[i] - mu[q] * minutes[i]
            for r in range(n_caps):
                value -= lam[q, r] * coef[r, i]
            priced[i] = value
        root_go[q] = _to_go(
            priced,
            lw[q],
            to_go[q],
            days,
            cw,
            co,
            max_run,
            min_run,
            min_off,
            off_base,
            order_start,
            order,
            klass,
            pattern,
            classes,
            patterns,
            allow_start,
            allow,
            weekend,
            same_weekend,
            must_work,
        )
    give_back = np.zeros(settings)  # what the whole of each resource is worth at its price
    for q in range(settings):
        back = lw[q] * max(0, max_weekends)
        if mu[q] > 0:
            back += mu[q] * max_minutes
        elif mu[q] < 0:  # pricing the minimum
            back += mu[q] * min_minutes
        for r in range(n_caps):
            back += lam[q, r] * cap[r]
        give_back[q] = back
    # The most any schedule is worth: the least of the bounds at the root.
    first_more = days
    if max_minutes >= 0:
        first_more = min(days, max_minutes // least_minutes)
    bound = upper[0, first_more]
    for q in range(settings):
        at_root = root_go[q] + give_back[q]
        if at_root < bound:
            bound = at_root
    root[0] = bound
    if bound_only or bound <= floor:
        return 0
    # Minutes serve as well: 0 any, 1 fewer, 2 more, 3 the same.
    limits = np.empty(width, dtype=np.int64)  # per resource its limit, -1 for none
    limits[:n_caps] = cap
    limits[n_caps] = max_weekends
    t_rooms = np.empty(width, dtype=np.int64)
    size = 1024
    gain = np.empty(size)
    mins = np.empty(size, dtype=np.int64)
    used = np.empty((size, width), dtype=np.int64)
    parent = np.empty(size, dtype=np.int64)
    took = np.empty(size, dtype=np.int64)
    state = np.empty(size, dtype=np.int64)
    # The root: before the first day, nothing used (state -1).
    gain[0] = 0.0
    mins[0] = 0
    used[0, :] = 0
    parent[0] = -1
    took[0] = -1
    state[0] = -1
    count = 1
    first, last = 0, 1  # the labels after the day before
    t_size = 1024
    t_gain = np.empty(t_size)
    t_mins = np.empty(t_size, dtype=np.int64)
    t_used = np.empty((t_size, width), dtype=np.int64)
    t_parent = np.empty(t_size, dtype=np.int64)
    t_took = np.empty(t_size, dtype=np.int64)
    t_state = np.empty(t_size, dtype=np.int64)
    row = np.empty(width, dtype=np.int64)
    for d in range(days):
        n_new = 0
        previous_classes = classes[d - 1] if d else 0
        n_patterns = patterns[d]
        base = allow_start[d]
        days_left = days - d - 1
        for lab in range(first, last):
            # Room for every extension of this label: one per shift of the day, and off.
            if n_new + order_start[d + 1] - order_start[d] + 1 > t_size:
                t_size = 2 * (n_new + order_start[d + 1] - order_start[d] + 1)
                t_gain = _grow_f(t_gain, t_size)
                t_mins = _grow_i(t_mins, t_size)
                t_used = _grow_2(t_used, t_size)
                t_parent = _grow_i(t_parent, t_size)
                t_took = _grow_i(t_took, t_size)
                t_state = _grow_i(t_state, t_size)
            st = state[lab]
            is_root = st < 0
            is_off = st >= off_base
            j = st - off_base if is_off else (st % cw if not is_root else 0)
            c_prev = st // cw if (not is_off and not is_root) else -1
            # Work today on each of the day's shifts the state allows.
            may_start = is_root or (is_off and (j + 1 >= min_off or j + 1 == d))
            for k in range(order_start[d], order_start[d + 1]):
                i = order[k]
                c = klass[k]
                if may_start:
                    nj = 0
                    charge = 1 if weekend[d] else 0
                else:
                    if is_off or is_root:
                        continue
                    if c_prev >= previous_classes:
                        continue
                    if not allow[base + c_prev * n_patterns + pattern[k]]:
                        continue
                    nj = j + 1
                    if nj >= cw:
                        if max_run >= 0:
                            continue
                        nj = cw - 1
                    if max_run >= 0 and nj + 1 > max_run:
                        continue
                    charge = 1 if (weekend[d] and not same_weekend[d]) else 0
                m = mins[lab] + minutes[i]
                if max_minutes >= 0 and m > max_minutes:
                    continue
                if m + reach[d + 1] < min_minutes:
                    continue
                fits = True
                for r in range(n_caps):
                    row[r] = used[lab, r] + coef[r, i]
                    if row[r] > cap[r]:
                        fits = False
                row[n_caps] = used[lab, n_caps] + charge
                if max_weekends >= 0 and row[n_caps] > max_weekends:
                    fits = False
                if not fits:
                    continue
                g = gain[lab] + gains[i]
                more = days_left
                if max_minutes >= 0:
                    more = min(more, (max_minutes - m) // least_minutes)
                if g + upper[d + 1, more] <= floor:
                    continue
                if (
                    settings
                    and g
                    + _priced_left(
                        to_go,
                        d,
                        c * cw + nj,
                        m,
                        row,
                        mu,
                        lam,
                        lw,
                        give_back,
                        cap=cap,
                        max_weekends=max_weekends,
                    )
                    <= floor
                ):
                    continue
                t_gain[n_new] = g
                t_mins[n_new] = m
                t_used[n_new, :] = row
                t_parent[n_new] = lab
                t_took[n_new] = i
                t_state[n_new] = c * cw + nj
                n_new += 1
            # Off today.
            if must_work[d]:
                continue
            if is_root:
                nj = 0
            elif is_off:
                nj = min(j + 1, co - 1)
            else:
                if not (j + 1 >= min_run or j + 1 == d):
                    continue
                nj = 0
            m = mins[lab]
            if m + reach[d + 1] < min_minutes:
                continue
            more = days_left
            if max_minutes >= 0:
                more = min(more, (max_minutes - m) // least_minutes)
            if gain[lab] + upper[d + 1, more] <= floor:
                continue
            if (
                settings
                and gain[lab]
                + _priced_left(
                    to_go,
                    d,
                    off_base + nj,
                    m,
                    used[lab],
                    mu,
                    lam,
                    lw,
                    give_back,
                    cap=cap,
                    max_weekends=max_weekends,
                )
                <= floor
            ):
                continue
            t_gain[n_new] = gain[lab]
            t_mins[n_new] = m
            t_used[n_new, :] = used[lab, :]
            t_parent[n_new] = lab
            t_took[n_new] = -1
            t_state[n_new] = off_base + nj
            n_new += 1
        # Keep the labels no other of the same state dominates: by state, best first, each
        # compared with those kept before it.
        by_gain = np.argsort(-t_gain[:n_new], kind="mergesort")
        per_state = np.zeros(n_states + 1, dtype=np.int64)
        for t in range(n_new):
            per_state[t_state[t] + 1] += 1
        for s in range(n_states):
            per_state[s + 1] += per_state[s]
        slot = per_state.copy()
        ranked = np.empty(n_new, dtype=np.int64)
        for t in by_gain:
            s = t_state[t]
            ranked[slot[s]] = t
            slot[s] += 1
        first = count
        reach_next = reach[d + 1]
        for s in range(n_states):
            kept_from = count
            for q in range(per_state[s], per_state[s + 1]):
                t = ranked[q]
                dominated = False
                # A kept label dominates when every completion of this one completes it
                # too: it needs no more minutes to reach the minimum, and has at least as
                # much room on every limit (room capped at what the days left can use).
                t_need = max(0, min_minutes - t_mins[t])
                t_room = min(reach_next, max_minutes - t_mins[t])
                for r in range(width):
                    t_rooms[r] = min(ahead[r, d + 1], limits[r] - t_used[t, r])
                for kept in range(kept_from, count):
                    if min_minutes > 0 and max(0, min_minutes - mins[kept]) > t_need:
                        continue
                    if max_minutes >= 0 and min(reach_next, max_minutes - mins[kept]) < t_room:
                        continue
                    worse = False
                    for r in range(width):
                        if (
                            limits[r] >= 0
                            and min(ahead[r, d + 1], limits[r] - used[kept, r]) < t_rooms[r]
                        ):
                            worse = True
                            break
                    if not worse:
                        dominated = True
                        break
                if dominated:
                    continue
                if count >= most_labels:
                    return -1
                if count >= size:
                    size *= 2
                    gain = _grow_f(gain, size)
                    mins = _grow_i(mins, size)
                    used = _grow_2(used, size)
                    parent = _grow_i(parent, size)
                    took = _grow_i(took, size)
                    state = _grow_i(state, size)
                gain[count] = t_gain[t]
                mins[count] = t_mins[t]
                used[count, :] = t_used[t, :]
                parent[count] = t_parent[t]
                took[count] = t_took[t]
                state[count] = s
                count += 1
        last = count
        if first == last:
            return 0
    # The best complete schedules: enough minutes, worth more than the floor.
    finals = np.empty(last - first, dtype=np.int64)
    n_finals = 0
    for lab in range(first, last):
        if mins[lab] >= min_minutes and gain[lab] > floor:
            finals[n_finals] = lab
            n_finals += 1
    finals = finals[:n_finals]
    best = finals[np.argsort(-gain[finals], kind="mergesort")]
    found = min(n_finals, plans.shape[0])
    for r in range(found):
        lab = best[r]
        for d in range(days - 1, -1, -1):
            plans[r, d] = took[lab]
            lab = parent[lab]
    return found
