"""One volunteer's best schedule over the whole horizon, by dynamic programming over days.

Given the shifts a volunteer may take and what each one is worth (its marginal value against
everyone else's current assignments), find the schedule that keeps every one of their hard
rules and is worth the most. The sequence rules live in the state: each day the volunteer is
off or works one shift, and the state after a day is (the class of that day's shift, or off;
the length of the current run of working days or days off). A shift's class is the set of
next-day shifts that may follow it (forbidden successions, overlap and rest), so shifts that
allow the same successors share a state. Max consecutive days and the two minimum-stretch
rules are transitions; a run of length d + 1 on day d began on the horizon's first day, which
is how the minimum rules' edge exemption is kept without a further flag.

Resource rules (minutes, shift count, per-kind caps, weekends, weekly minutes) are priced by
Lagrangian multipliers that are adjusted until the schedule keeps them. Each pass solves a batch
of multiplier settings at once (numpy over the batch); prices are jittered per shift and per
weekend so that equal options drop out one by one, and when no row fits, two rows' schedules
are spliced at a day off where both are rested. The pass itself is compiled (`dp_kernel`): on
Curtois Instance23 (364 days, 16 kinds) a batch of 16 settings takes about 4 ms where the
numpy pass it replaced took about 80 ms. Whatever comes
out is checked against the volunteer's rules by the checker before it is returned; None means
the search found no valid schedule (the caller falls back to CP-SAT).

The search takes at most one shift a day; where the rules allow several, it is a restriction
(the schedule is valid, not necessarily the best).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

import numpy as np

from scheduling import dp_kernel
from scheduling.checker import check
from scheduling.model.data import ProblemIndex, whole_km
from scheduling.problem import Limits, Pair, Problem, Volunteer

NEG = -1e30
# Multiplier settings solved together per pass, and passes before giving up. A roster build
# (every volunteer once, most finding a valid schedule in the first pass) uses the smaller
# batch: Curtois Instance24's build took 19 s with 16 settings, 41 s with 32 at load 3, and
# at load 3.4 the 32-setting build overran the part's limit (no roster). The start is worse
# (474,387 against about 241,000), so at load 1.4 Instance24 ends at 402,522 at 60 s where
# 32 settings reached 230,582. Improvement moves use the larger batch (Instance22 at 60 s,
# load 3: 61,350 with 32 settings, 73,039 with 16).
BATCH = 32
BUILD_BATCH = 16
MAX_PASSES = 40
# Splicing two rows' schedules: how many rows may give the first part, and how many seams
# are checked on every resource.
SPLICE_FIRSTS = 16
SPLICE_TRIPLES = 50_000


@dataclass(frozen=True, slots=True)
class ShiftTable:
    """Per shift position of a problem: day, start and end (epoch minutes), minutes, week and
    kind code, and which kinds may not follow which; built once per ProblemIndex."""

    day: np.ndarray
    start: np.ndarray
    end: np.ndarray
    minutes: np.ndarray
    week: np.ndarray
    kind: np.ndarray
    kind_code: dict[str, int]
    never: np.ndarray

    @classmethod
    def of(cls, index: ProblemIndex) -> ShiftTable:
        found = _TABLES.get(id(index))
        if found is not None and found[0] is index:
            return found[1]
        facts = index.shifts
        kinds = sorted({f.kind for f in facts})
        kind_code = {kind: i for i, kind in enumerate(kinds)}
        never = np.zeros((len(kinds), len(kinds)), dtype=bool)
        for first, second in index.problem.rules.forbidden_successions:
            if first in kind_code and second in kind_code:
                never[kind_code[first], kind_code[second]] = True
        table = cls(
            np.array([f.day for f in facts], dtype=np.int64),
            np.array([f.start for f in facts], dtype=np.int64),
            np.array([f.end for f in facts], dtype=np.int64),
            np.array([f.minutes for f in facts], dtype=np.int64),
            np.array([f.week for f in facts], dtype=np.int64),
            np.array([kind_code[f.kind] for f in facts], dtype=np.int64),
            kind_code,
            never,
        )
        if len(_TABLES) >= 4:
            _TABLES.clear()
        _TABLES[id(index)] = (index, table)
        return table


_TABLES: dict[int, tuple[ProblemIndex, ShiftTable]] = {}


@dataclass(slots=True)
class _Caps:
    """Upper caps other than total minutes, as rows of a coefficient matrix over candidates,
    plus the weekend cap, which the transitions price."""

    coef: np.ndarray  # (caps, candidates)
    cap: np.ndarray  # (caps,)
    weekends: int | None


@dataclass(slots=True)
class Multipliers:
    """Prices found for one volunteer; a good start for the next search on a similar person."""

    minutes: float = 0.0
    caps: dict[str, float] | None = None
    weekend: float = 0.0


_UNIQUE: dict[tuple[tuple[int, ...], bytes], tuple[np.ndarray, np.ndarray]] = {}


def _unique_rows(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a Boolean matrix and each row's index among them (memoised: most
    days of a long horizon look alike, and numpy's unique over rows is slow)."""
    key = (mask.shape, np.packbits(mask).tobytes())
    found = _UNIQUE.get(key)
    if found is None:
        if len(_UNIQUE) > 4096:
            _UNIQUE.clear()
        rows, inverse = np.unique(mask, axis=0, return_inverse=True)
        found = _UNIQUE[key] = (rows, inverse.reshape(-1).astype(np.int64))
    return found


class PersonDP:
    """The day-by-day structure of one volunteer's candidate shifts, built once and searched
    with any gains."""

    def __init__(
        self,
        index: ProblemIndex,
        volunteer: int,
        candidates: Sequence[int],
        must: Collection[int],
    ) -> None:
        self.index = index
        self.volunteer = volunteer
        problem = index.problem
        limits = problem.volunteers[volunteer].limits
        self.candidates = np.asarray(candidates, dtype=np.int64).reshape(-1)
        table = ShiftTable.of(index)
        at = self.candidates
        self.days = index.days
        self.minutes = table.minutes[at].astype(np.float64)
        self.day_of = table.day[at]
        self.max_run = limits.max_consecutive_days
        self.min_run = limits.min_consecutive_days or 1
        self.min_off = limits.min_consecutive_days_off or 1
        self.cap_work = max(self.min_run, self.max_run or 1, 1)
        self.cap_off = max(self.min_off, 1)
        self.min_minutes = limits.min_minutes or 0
        available = float(self.minutes.sum())
        self.max_minutes = (
            limits.max_minutes
            if limits.max_minutes is not None and limits.max_minutes < available
            else None
        )
        is_must = np.isin(at, np.asarray(list(must), dtype=np.int64))
        self.must_work = np.zeros(self.days, dtype=bool)
        self.must_work[self.day_of[is_must]] = True
        # Shifts per day, ascending (a day with a pinned shift keeps only that one).
        keep = np.flatnonzero(~self.must_work[self.day_of] | is_must)
        keep = keep[np.argsort(self.day_of[keep], kind="stable")]
        bounds = np.searchsorted(self.day_of[keep], np.arange(self.days + 1))
        per_day = [keep[bounds[d] : bounds[d + 1]] for d in range(self.days)]
        # Which shift may follow which on the next day: no forbidden succession of kinds, and
        # the later one starts at least `min_rest_minutes` after the earlier one ends.
        self.kind_of = table.kind[at]
        never = table.never
        starts = table.start[at]
        ready = table.end[at] + problem.rules.min_rest_minutes

        def follows(today: np.ndarray, tomorrow: np.ndarray) -> np.ndarray:
            kind_ok = ~never[self.kind_of[today][:, None], self.kind_of[tomorrow][None, :]]
            return np.asarray(kind_ok & (starts[tomorrow][None, :] >= ready[today][:, None]))

        # Per day: the shifts grouped in classes (same next-day shifts allowed), in class
        # order; the classes as padded rows of positions in that order (the padding points one
        # past the end); and from each class which next-day shifts may follow, with next-day
        # shifts that the same classes may precede sharing one column.
        days_shifts = per_day
        self.order: list[np.ndarray] = []
        self.pad: list[np.ndarray] = []
        rows_of: list[np.ndarray] = []
        for d in range(self.days):
            today = days_shifts[d]
            tomorrow = days_shifts[d + 1] if d + 1 < self.days else np.zeros(0, np.int64)
            mask = follows(today, tomorrow).reshape(len(today), len(tomorrow))
            if len(today) and len(tomorrow):
                rows, klass = _unique_rows(mask)
            elif len(today):
                rows, klass = np.zeros((1, 0), dtype=bool), np.zeros(len(today), dtype=np.int64)
            else:
                rows, klass = mask, np.zeros(0, dtype=np.int64)
            ranked = np.argsort(klass, kind="stable")
            self.order.append(today[ranked])
            sizes = np.bincount(klass, minlength=len(rows))
            widest = int(sizes.max()) if len(sizes) else 0
            slot = np.arange(widest)[None, :]
            firsts = (np.cumsum(sizes) - sizes)[:, None]
            pad = np.where(slot < sizes[:, None], firsts + slot, len(today)).astype(np.int64)
            self.pad.append(pad)
            rows_of.append(rows)
        self.allowed: list[np.ndarray] = []  # per day: (classes, next-day column patterns)
        self.column: list[np.ndarray] = []  # per day: each next-day shift's pattern
        for d in range(self.days):
            # Columns in the next day's class order.
            rows = rows_of[d]
            tomorrow = days_shifts[d + 1] if d + 1 < self.days else np.zeros(0, np.int64)
            if len(rows) and len(tomorrow):
                # Columns in the next day's class order (the day's shifts are ascending).
                mask = rows[:, np.searchsorted(tomorrow, self.order[d + 1])]
                patterns, column = _unique_rows(mask.T)
                patterns = patterns.T
            else:
                # Nothing today (one empty pattern for every next-day shift) or tomorrow.
                patterns = np.zeros((len(rows), 1 if len(tomorrow) else 0), dtype=bool)
                column = np.zeros(len(tomorrow), dtype=np.int64)
            self.allowed.append(np.where(patterns, 0.0, NEG).reshape(len(rows), patterns.shape[1]))
            self.column.append(column.reshape(-1).astype(np.int64))
        self._weekends(index)
        self.caps = self._caps(table, limits)
        self._layout: dp_kernel.Layout | None = None

    def _weekends(self, index: ProblemIndex) -> None:
        """Which days belong to a weekend, and whether the day before is in the same one: a
        worked weekend is charged on its first worked day."""
        problem = index.problem
        start = problem.horizon_start.toordinal()
        weekend_days = set(problem.rules.weekend_days)
        self.weekend_of = np.full(self.days, -1, dtype=np.int64)
        for d in range(self.days):
            weekday = (start + d - 1) % 7
            if weekday in weekend_days:
                self.weekend_of[d] = (start + d - 1 - weekday) // 7
        self.same_weekend_as_before = np.zeros(self.days, dtype=bool)
        self.same_weekend_as_before[1:] = (self.weekend_of[1:] >= 0) & (
            self.weekend_of[1:] == self.weekend_of[:-1]
        )

    def _caps(self, table: ShiftTable, limits: Limits) -> _Caps:
        rows: list[np.ndarray] = []
        caps: list[float] = []
        self.cap_names: list[str] = []
        n = len(self.candidates)
        if limits.max_shifts is not None and n > limits.max_shifts:
            rows.append(np.ones(n))
            caps.append(limits.max_shifts)
            self.cap_names.append("shifts")
        for kind, cap in sorted(limits.max_shifts_by_kind.items()):
            code = table.kind_code.get(kind, -1)
            of_kind = (self.kind_of == code).astype(np.float64)
            if of_kind.sum() > cap:
                rows.append(of_kind)
                caps.append(cap)
                self.cap_names.append(f"kind:{kind}")
        weekly = limits.max_minutes_per_week
        if weekly is not None:
            weeks = table.week[self.candidates]
            for week in sorted(set(weeks.tolist())):
                row = np.where(weeks == week, self.minutes, 0.0)
                if row.sum() > weekly:
                    rows.append(row)
                    caps.append(weekly)
                    self.cap_names.append(f"week:{week}")
        weekends = limits.max_weekends
        weekend_of_shift = self.weekend_of[self.day_of]
        worked_weekends = np.unique(weekend_of_shift[weekend_of_shift >= 0])
        if weekends is not None and len(worked_weekends) <= weekends:
            weekends = None
        coef = np.array(rows, dtype=np.float64).reshape(len(rows), n)
        return _Caps(coef, np.array(caps, dtype=np.float64), weekends)

    # ------------------------------------------------------------------ the day-by-day pass

    def solve_batch(self, gains: np.ndarray, weekend_price: np.ndarray) -> np.ndarray | None:
        """Best schedule per row of `gains` (rows, candidates), a worked weekend costing
        `weekend_price` (rows, days: charged on its first worked day): per row and day the
        chosen candidate or -1. None when no schedule keeps the sequence rules. The pass is
        compiled (`dp_kernel`); the day structure is flattened for it on first use."""
        return dp_kernel.solve(self.layout(), gains, weekend_price)

    def layout(self) -> dp_kernel.Layout:
        """The day structure flattened for the compiled passes (built on first use)."""
        if self._layout is None:
            self._layout = dp_kernel.layout_of(self)
        return self._layout

    def search(
        self,
        gains: np.ndarray,
        seed: int = 0,
        deadline: float | None = None,
        start: Multipliers | None = None,
        polish: int = 1,
        max_passes: int = MAX_PASSES,
        batch: int = BATCH,
        collect: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray | None, Multipliers]:
        """The most valuable schedule found that keeps every rule the search knows (candidate
        ids), and the prices it ended with.

        Each pass solves a grid of settings: prices per minute around the current one, times
        scales of the caps' prices. The next pass centres on the setting that broke the rules
        least, zooming in where the rows straddle the minutes window and moving on (wider)
        where they all lie on one side of it; each cap's price moves by a step that grows
        while the cap stays over or under and halves when it crosses. When no row is valid,
        splicing two rows (this pass's and the previous pass's nearest) may give one. Once a
        valid schedule is found, polishing passes look for a better one with relaxed prices,
        the minute prices bisected between the dearest one that broke a rule and the valid
        one; a pass that finds better earns another, and the search ends after `polish`
        passes that find nothing better. Every other valid schedule met on the way (candidate ids,
        possibly repeated) is appended to `collect` when it is given."""
        n = len(self.candidates)
        caps = self.caps
        start = start or Multipliers()
        gains = np.asarray(gains, dtype=np.float64)
        rng = np.random.default_rng(seed)
        # Breaks ties between equal schedules (worth far less than a unit of gain in total).
        noisy = gains + rng.random(n) * (0.5 / max(1, self.days))
        scale = max(1.0, float(np.percentile(np.abs(gains), 90)) if n else 1.0)
        unit = float(self.minutes.mean()) if n else 1.0
        low = float(self.min_minutes)
        high = float(self.max_minutes) if self.max_minutes is not None else np.inf
        window = low > 0 or self.max_minutes is not None
        names = self.cap_names
        priced = bool(names) or caps.weekends is not None
        lam = np.array([(start.caps or {}).get(name, 0.0) for name in names], dtype=np.float64)
        norm = np.array([unit if name.startswith("week:") else 1.0 for name in names])
        weekend_lam = float(start.weekend) if caps.weekends is not None else 0.0
        mu, span = start.minutes, 2.0 * scale / unit
        least_span = 1e-3 * scale / unit
        total_caps = len(names) + (caps.weekends is not None)
        step = np.full(total_caps, 0.02 * scale)
        step[: len(names)] /= norm
        last_signs = np.zeros(total_caps)
        least_step = step * 0.05
        if window and priced:
            steps = np.repeat(np.linspace(-1.0, 1.0, batch // 4), 4)
            scales = np.tile([0.5, 1.0, 1.5, 2.5], batch // 4)
        elif window:
            steps, scales = np.linspace(-1.0, 1.0, batch), np.ones(batch)
        else:
            steps = np.zeros(batch)
            scales = np.concatenate([[0.0], 2.0 ** np.linspace(-2, 5, batch - 1)])
        weekend_ids = self.weekend_of
        weekend_keys = np.unique(weekend_ids[weekend_ids >= 0])
        best: tuple[float, np.ndarray] | None = None
        passes = 0
        pool = np.zeros((0, self.days), dtype=np.int64)
        while passes < max_passes:
            if deadline is not None and passes and time.monotonic() > deadline:
                break
            passes += 1
            mus = mu + span * steps
            price = lam @ caps.coef if len(lam) else np.zeros(n)
            # Prices differ a little from shift to shift and weekend to weekend (drawn anew
            # each pass), so that where many are worth the same (every weekend alike) a rising
            # price drops them one by one, not all at once. Prices only steer the search.
            spread = 0.3 * (1.0 + passes / 8.0)
            jitter = 1.0 + spread * rng.random(n)
            weekend_jitter = 1.0 + spread * rng.random(self.days)[self.weekend_of % self.days]
            charge = mus[:, None] * self.minutes[None, :] + scales[:, None] * price[None, :]
            priced_gains = noisy[None, :] - charge * jitter[None, :]
            weekend_price = (scales * weekend_lam)[:, None] * weekend_jitter[None, :]
            plan = self.solve_batch(priced_gains, weekend_price)
            if plan is None:
                return None, start
            taken = np.zeros((batch, n), dtype=bool)
            rows, days = np.nonzero(plan >= 0)
            taken[rows, plan[rows, days]] = True
            minutes = taken @ self.minutes
            excess = (taken.astype(np.float64) @ caps.coef.T - caps.cap[None, :]) / norm[None, :]
            weekends = np.zeros(batch)
            if caps.weekends is not None:
                seen = np.zeros((batch, len(weekend_keys)), dtype=bool)
                on = (plan >= 0) & (weekend_ids[None, :] >= 0)
                r_on, d_on = np.nonzero(on)
                seen[r_on, np.searchsorted(weekend_keys, weekend_ids[d_on])] = True
                weekends = seen.sum(1) - caps.weekends
            short = (np.maximum(0.0, low - minutes) + np.maximum(0.0, minutes - high)) / unit
            over = np.maximum(0.0, excess).sum(1) + np.maximum(0.0, weekends)
            valid = (short == 0) & (over == 0)
            if collect is not None:
                collect.extend(np.flatnonzero(taken[r]) for r in np.flatnonzero(valid).tolist())
            nearest = np.argsort(short + over)
            spliced = None
            if not valid.any():
                spliced = self.splice(np.concatenate([plan[nearest], pool]), gains)
            pool = plan[nearest[: batch // 2]]
            if spliced is not None or valid.any():
                if spliced is not None:
                    r = int(nearest[0])
                    candidate = spliced
                else:
                    value = taken @ gains
                    r = int(np.flatnonzero(valid)[np.argmax(value[valid])])
                    candidate = (float(value[r]), np.flatnonzero(taken[r]))
                gained = best is not None and candidate[0] > best[0] + 1e-9
                if best is None or candidate[0] > best[0]:
                    best = candidate
                if not gained:  # a polishing pass that finds better earns another
                    if polish <= 0:
                        mu = float(mus[r])
                        break
                    polish -= 1
                # Relax the prices a little: the first valid batch may have over-priced.
                lam, weekend_lam = lam * scales[r] * 0.8, weekend_lam * scales[r] * 0.8
                mu, span = float(mus[r]), max(least_span, span * 0.5)
                cheaper = ~valid & (mus < mus[r])
                if window and cheaper.any():
                    # The next grid spans the gap between the dearest minute price that broke
                    # a rule and the one that kept them all (a bisection, batch-wide).
                    low_price = float(mus[cheaper].max())
                    mu, span = 0.5 * (low_price + mu), max(least_span, 0.5 * (mu - low_price))
                continue
            violation = short + over
            r = int(np.argmin(violation + 1e-9 * np.abs(steps)))
            if window:
                mu, span = self._next_minutes(mus, span, minutes[scales == scales[r]], r)
                span = max(least_span, span)
            lam, weekend_lam = lam * scales[r], weekend_lam * scales[r]
            # Each cap's price moves by its own step, which grows while the cap stays on one
            # side and halves when it crosses (prices of slack caps fall back towards 0).
            signs = np.where(excess[r] > 0, 1.0, np.where((excess[r] < 0) & (lam > 0), -1.0, 0.0))
            if caps.weekends is not None:
                over_weekends = weekends[r] > 0
                slack_weekends = weekends[r] < 0 and weekend_lam > 0
                signs = np.append(signs, 1.0 if over_weekends else -1.0 if slack_weekends else 0.0)
            steps_now = np.where(signs == last_signs, step * 1.5, step)
            steps_now = np.where(signs == -last_signs, step * 0.5, steps_now)
            step, last_signs = np.maximum(steps_now, least_step), signs
            moved = np.append(lam, weekend_lam) if caps.weekends is not None else lam
            moved = np.maximum(0.0, moved + signs * step)
            lam = moved[: len(lam)]
            if caps.weekends is not None:
                weekend_lam = float(moved[-1])
            if (signs > 0).any():
                # New cap prices move the minutes too: look wider again.
                span = max(span, 0.05 * scale / unit)
        found = Multipliers(mu, dict(zip(names, lam.tolist(), strict=True)), weekend_lam)
        return (None if best is None else best[1]), found

    def splice(self, plan: np.ndarray, gains: np.ndarray) -> tuple[float, np.ndarray] | None:
        """The most valuable valid schedule made of one row's days up to some day t and
        another row's after it, where both rows are off on t with a run of days off long enough
        that either may go on from there (so every sequence rule holds across the seam). The
        rows the multipliers give often straddle a tight cap: one a little over, one a little
        under; a seam between them keeps both sides' sequences and sums their resources.

        :return: (value, candidate ids) or None."""
        if not len(self.candidates):
            return None  # nothing to work: the empty schedule is all there is
        rows, days = plan.shape
        caps = self.caps
        worked = plan >= 0
        at = np.where(worked, plan, 0)
        per_day = [
            np.where(worked, self.minutes[at], 0.0)[:, :, None],
            np.where(worked[:, :, None], caps.coef.T[at], 0.0),
            np.where(worked, gains[at], 0.0)[:, :, None],
        ]
        if caps.weekends is not None:
            before = np.zeros_like(worked)
            before[:, 1:] = worked[:, :-1]
            first = worked & (self.weekend_of[None, :] >= 0)
            first &= ~(self.same_weekend_as_before[None, :] & before)
            per_day.append(first.astype(np.float64)[:, :, None])
        daily = np.concatenate(per_day, axis=2)  # (rows, days, resources)
        prefix = np.cumsum(daily, axis=1)  # through day t
        total = prefix[:, -1, :]
        suffix = total[:, None, :] - prefix  # after day t
        # Off on t with a run of days off at least min_off long (the seam's state is the same
        # "rested" state in both rows).
        run = np.ones((rows, days), dtype=bool)
        for back in range(self.cap_off):
            shifted = np.zeros((rows, days), dtype=bool)
            shifted[:, back:] = ~worked[:, : days - back]
            run &= shifted
        run[:, -1] = False
        low = float(self.min_minutes)
        high = float(self.max_minutes) if self.max_minutes is not None else np.inf
        # First rows: the ones nearest to valid come first in `plan`; seams are checked on
        # minutes for every triple, then on the other resources for the survivors.
        firsts = min(rows, SPLICE_FIRSTS)
        minutes = prefix[:firsts, None, :, 0] + suffix[None, :, :, 0]  # (firsts, rows, days)
        ok = run[:firsts, None, :] & run[None, :, :] & (minutes >= low) & (minutes <= high)
        a, b, t = np.nonzero(ok)
        if not len(a):
            return None
        if len(a) > SPLICE_TRIPLES:
            keep = np.random.default_rng(len(a)).choice(len(a), SPLICE_TRIPLES, replace=False)
            a, b, t = a[keep], b[keep], t[keep]
        sums = prefix[a, t] + suffix[b, t]  # (triples, resources)
        n_caps = len(caps.cap)
        fits = (sums[:, 1 : 1 + n_caps] <= caps.cap[None, :]).all(1)
        if caps.weekends is not None:
            fits &= sums[:, -1] <= caps.weekends
        if not fits.any():
            return None
        value = np.where(fits, sums[:, 1 + n_caps], -np.inf)
        i = int(np.argmax(value))
        joined = np.concatenate([plan[a[i], : t[i] + 1], plan[b[i], t[i] + 1 :]])
        return float(value[i]), joined[joined >= 0]

    def _next_minutes(
        self, mus: np.ndarray, span: float, minutes: np.ndarray, r: int
    ) -> tuple[float, float]:
        """The next centre and width of the minute prices, from the rows of row r's cap scale
        (in rising price): zoom in on r where those rows straddle the window, else move
        beyond the grid's end on the side the window lies and widen."""
        high = self.max_minutes if self.max_minutes is not None else np.inf
        if (minutes > high).all():
            return float(mus.max() + span), span * 2.0
        if (minutes < self.min_minutes).all():
            return float(mus.min() - span), span * 2.0
        return float(mus[r]), span * 0.5


def applies(index: ProblemIndex, candidates: Sequence[int], must: Collection[int]) -> bool:
    """Whether the day-by-day search models these shifts: every one within the horizon, pinned
    ones among them and at most one a day, and no clash (overlap, rest) between shifts two or
    more days apart (the state only remembers the day before)."""
    table = ShiftTable.of(index)
    at = np.asarray(candidates, dtype=np.int64).reshape(-1)
    days = table.day[at]
    if len(at) and (days.min() < 0 or days.max() >= index.days):
        return False
    pinned = np.asarray(list(must), dtype=np.int64)
    if not np.isin(pinned, at).all() or len(np.unique(table.day[pinned])) < len(pinned):
        return False
    latest = np.full(index.days, -np.inf)
    np.maximum.at(latest, days, table.end[at] + index.problem.rules.min_rest_minutes)
    earliest = np.full(index.days + 2, np.inf)
    np.minimum.at(earliest, days, table.start[at].astype(np.float64))
    later = np.minimum.accumulate(earliest[::-1])[::-1]  # earliest start on day >= d
    return not bool((latest > later[2:]).any())


def pinned_positions(index: ProblemIndex) -> list[list[int]]:
    """Per volunteer position, the positions of the shifts they are pinned to (the `must` of
    their search)."""
    pinned: list[list[int]] = [[] for _ in index.problem.volunteers]
    for pair in index.problem.pinned:
        v = index.volunteer_pos.get(pair.volunteer)
        s = index.shift_pos.get(pair.shift)
        if v is not None and s is not None:
            pinned[v].append(s)
    return pinned


def per_assignment(problem: Problem, volunteer: Volunteer) -> bool:
    """Whether every objective term of this volunteer changes by a fixed amount per assignment,
    as the search's gains assume: not so for a fairness target (a sum over the horizon)."""
    return not (problem.weights.fairness and volunteer.target_minutes is not None)


@dataclass(frozen=True, slots=True)
class Cover:
    """Per shift position: the head count wanted and the cost of one person short or extra."""

    required: np.ndarray
    under: np.ndarray
    over: np.ndarray

    @classmethod
    def of(cls, problem: Problem) -> Cover:
        shifts = problem.shifts
        return cls(
            np.array([s.required for s in shifts], dtype=np.int64),
            np.array([problem.under_weight(s) for s in shifts], dtype=np.float64),
            np.array([problem.over_weight(s) for s in shifts], dtype=np.float64),
        )


def marginal_gains(
    problem: Problem,
    cover: Cover,
    volunteer: Volunteer,
    positions: np.ndarray,
    others: np.ndarray,
    skilled: Callable[[int, str], int] | None = None,
    frugal: bool = False,
) -> np.ndarray:
    """What assigning the volunteer to each shift (positions) changes in the objective
    (positive: the roster gets cheaper), given how many others are on it (`others`, per
    position) and, for shifts with skill needs, how many others have a skill (`skilled`).
    Frugal: every place costs 1, as if nothing were wanted, so the volunteer takes only what
    their minimum rules require. Fairness is not per assignment and is left out."""
    weights = problem.weights
    if frugal:
        gains = np.full(len(positions), -1.0)
    else:
        short = others < cover.required[positions]
        gains = np.where(short, cover.under[positions], -cover.over[positions])
    where = {int(s): i for i, s in enumerate(positions)}
    shifts = problem.shifts
    if not frugal and weights.skill_under:
        for i, s in enumerate(positions.tolist()):
            for skill, need in shifts[s].skills.items():
                having = skilled(s, skill) if skilled is not None else 0
                if skill in volunteer.skills and having < need:
                    gains[i] += weights.skill_under
    index_of = {shifts[s].id: i for s, i in where.items()} if volunteer.requests else {}
    for request in volunteer.requests:
        wished = index_of.get(request.shift)
        if wished is not None:
            gains[wished] += request.weight if request.want else -request.weight
    if weights.distance:
        for i, s in enumerate(positions.tolist()):
            gains[i] -= weights.distance * whole_km(volunteer, shifts[s])
    if weights.change:
        ids = {shifts[s].id: i for s, i in where.items()}
        for pair in problem.previous:
            if pair.volunteer == volunteer.id and (kept := ids.get(pair.shift)) is not None:
                gains[kept] += weights.change
    return np.asarray(gains, dtype=np.float64)


def keeps_rules(problem: Problem, volunteer: Volunteer, shift_ids: Collection[str]) -> bool:
    """Whether the checker finds no violation of the volunteer's own rules in this schedule
    (capacity is the caller's: it depends on everyone else)."""
    ids = set(shift_ids)
    alone = replace(
        problem,
        volunteers=(volunteer,),
        shifts=tuple(s for s in problem.shifts if s.id in ids),
        pinned=tuple(p for p in problem.pinned if p.volunteer == volunteer.id),
        forbidden=tuple(p for p in problem.forbidden if p.volunteer == volunteer.id),
        previous=(),
    )
    pairs = [Pair(volunteer.id, s) for s in ids]
    return all(v.rule == "capacity" for v in check(alone, pairs).violations)


def plan_person(
    index: ProblemIndex,
    volunteer: int,
    candidates: Sequence[int],
    gains: Sequence[float] | np.ndarray,
    must: Collection[int] = (),
    seed: int = 0,
    deadline: float | None = None,
    start: Multipliers | None = None,
    polish: int = 1,
    retry_past_deadline: bool = True,
    batch: int = BATCH,
    dp: PersonDP | None = None,
) -> tuple[list[int] | None, Multipliers | None]:
    """The volunteer's best schedule found (shift positions) and the prices it ended with, or
    (None, ...) when the search does not apply or finds nothing that keeps every rule.

    When the search from `start` finds nothing, a second one starts from no prices; with
    `retry_past_deadline` it may run past `deadline` (a roster build needs every volunteer),
    otherwise it stops there too (an improvement move can wait for the next turn).

    :param candidates: positions of the shifts the volunteer may take (eligible, with room).
    :param gains: per candidate, what taking it is worth (`marginal_gains`).
    :param must: positions that must be taken (pinned).
    :param dp: the structure of exactly these candidates and `must`, built before (callers
        that plan one volunteer again and again keep it: building it costs about as much as
        a search on long horizons).
    """
    if not applies(index, candidates, must):
        return None, start
    limits = index.problem.volunteers[volunteer].limits
    if limits.max_consecutive_days == 0:
        candidates, gains = [], []
    if dp is None or len(candidates) == 0:
        dp = PersonDP(index, volunteer, candidates, must)
    values = np.asarray(gains, dtype=np.float64)
    passes = MAX_PASSES // 3 if start is not None else MAX_PASSES
    found, prices = dp.search(values, seed, deadline, start, polish, passes, batch)
    if found is None and start is not None:
        # Another volunteer's prices can lead the search astray: once more from none.
        found, prices = dp.search(
            values,
            seed,
            None if retry_past_deadline else deadline,
            None,
            polish,
            MAX_PASSES,
            batch,
        )
    if found is None:
        return None, prices
    chosen = [int(dp.candidates[j]) for j in found]
    problem = index.problem
    if not keeps_rules(
        problem, problem.volunteers[volunteer], [problem.shifts[s].id for s in chosen]
    ):
        return None, prices
    return chosen, prices
