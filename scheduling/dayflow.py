"""Federation-scale rosters by exact day-by-day re-optimisation (min-cost flow).

When each volunteer works at most one shift a day and no rule asks for a minimum (minutes or
stretch lengths), fixing everyone's other days makes one day's assignment a transportation
problem: every hard rule that spans days (weekly and horizon caps, kind caps, rest, forbidden
successions, consecutive days, weekends) only decides *whether* a pair is allowed today, and
every objective term is a cost per pair (distance, requests, previous plan, the fairness
minutes this shift adds on top of the other days) or per place (under, over, skills). One
min-cost flow per day then gives that day's best assignment given the rest of the week; sweeping
the days again and again is a large-neighbourhood search whose every step is exact and that
handles tens of thousands of volunteers and millions of eligible pairs in seconds.

Skills are counted once per person (a volunteer with two needed skills covers one of them in the
flow); the re-scored roster credits both, so the flow never over-states what a day achieves.

Days alone settle where a whole-week view would not (a weekly cap spent on the day that needed a
person least): sweeps then run with budget prices (`DayFlow._budget_prices`), and the solver
starts them from the whole-horizon relaxation of `scheduling.costbound` where that is cheap.
Where full flows would not sweep the horizon within the limit, `DayFlow.prune` keeps each
post's nearest candidates and `DayFlow.widen` gives back all of them to any shift left short.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from ortools.graph.python import min_cost_flow

from scheduling.model.data import ProblemIndex, haversine_term, km_of_term, radians_of
from scheduling.model.objective import score
from scheduling.model.roster import Roster
from scheduling.problem import Location, Pair, Problem

NO_LIMIT = np.iinfo(np.int64).max // 4
FAR_PAST = -(1 << 40)
FAR_FUTURE = 1 << 40


# Sweeps without a better roster before the search changes tack or stops.
PATIENCE = 3


def _mark_nearest(near: np.ndarray, h: np.ndarray, wanted: np.ndarray) -> None:
    """Mark, in each column, the `wanted[column]` rows of smallest `h` (finite ones only)."""
    most = int(min(wanted.max(initial=0), h.shape[0]))
    if most <= 0:
        return
    rows = np.argpartition(h, most - 1, axis=0)[:most] if most < h.shape[0] else None
    if rows is None:
        rows = np.broadcast_to(np.arange(h.shape[0])[:, None], h.shape)
    values = np.take_along_axis(h, rows, axis=0)
    rank = np.argsort(np.argsort(values, axis=0), axis=0)
    chosen = (rank < wanted[None, :]) & np.isfinite(values)
    columns = np.broadcast_to(np.arange(h.shape[1])[None, :], rows.shape)
    near[rows[chosen], columns[chosen]] = True


def applies(problem: Problem) -> bool:
    """Whether the day-by-day search keeps every hard rule of this problem."""
    if not problem.rules.one_shift_per_day:
        return False
    return not any(
        v.limits.min_minutes or v.limits.min_consecutive_days or v.limits.min_consecutive_days_off
        for v in problem.volunteers
    )


def _limit(values: Sequence[int | None]) -> np.ndarray:
    return np.array([NO_LIMIT if x is None else x for x in values], dtype=np.int64)


@dataclass(slots=True)
class _Pairs:
    """Eligible pairs sorted by day, with their fixed cost (distance, requests, previous)."""

    volunteer: np.ndarray
    shift: np.ndarray
    cost: np.ndarray
    day_start: np.ndarray  # pairs of dense day k are [day_start[k], day_start[k + 1])
    special: np.ndarray  # a request or previous-plan term: never pruned


class DayFlow:
    """The search state: who works which shift on each day, and the static facts it needs."""

    def __init__(
        self,
        problem: Problem,
        eligible: Sequence[Sequence[int] | np.ndarray],
        index: ProblemIndex | None = None,
    ) -> None:
        self.problem = problem
        self.index = index or ProblemIndex.build(problem)
        facts = self.index.shifts
        volunteers = problem.volunteers
        self.n_volunteers = len(volunteers)
        self.first_day = min((f.day for f in facts), default=0)
        self.days = (max((f.day for f in facts), default=0) - self.first_day) + 1
        self.s_day = np.array([f.day - self.first_day for f in facts], dtype=np.int64)
        self.s_start = np.array([f.start for f in facts], dtype=np.int64)
        self.s_end = np.array([f.end for f in facts], dtype=np.int64)
        self.s_minutes = np.array([f.minutes for f in facts], dtype=np.int64)
        self.s_week = np.array([f.week for f in facts], dtype=np.int64)
        self.s_weekend = np.array(
            [-1 if f.weekend is None else f.weekend for f in facts], dtype=np.int64
        )
        kinds = sorted({f.kind for f in facts})
        self.kind_code = {kind: code for code, kind in enumerate(kinds)}
        self.s_kind = np.array([self.kind_code[f.kind] for f in facts], dtype=np.int64)
        # The calendar week and weekend of each dense day (from any shift that starts on it).
        self.day_week = np.full(self.days, -1, dtype=np.int64)
        self.day_weekend = np.full(self.days, -1, dtype=np.int64)
        self.day_week[self.s_day] = self.s_week
        self.day_weekend[self.s_day] = self.s_weekend
        limits = [v.limits for v in volunteers]
        self.max_minutes = _limit([lim.max_minutes for lim in limits])
        self.max_week = _limit([lim.max_minutes_per_week for lim in limits])
        self.max_shifts = _limit([lim.max_shifts for lim in limits])
        self.max_consecutive = _limit([lim.max_consecutive_days for lim in limits])
        self.max_weekends = _limit([lim.max_weekends for lim in limits])
        self.kind_caps: dict[int, np.ndarray] = {}
        for kind, code in self.kind_code.items():
            if any(kind in lim.max_shifts_by_kind for lim in limits):
                self.kind_caps[code] = _limit([lim.max_shifts_by_kind.get(kind) for lim in limits])
        self.target = np.array(
            [-1 if v.target_minutes is None else v.target_minutes for v in volunteers],
            dtype=np.int64,
        )
        self.successions = {
            (self.kind_code[a], self.kind_code[b])
            for a, b in problem.rules.forbidden_successions
            if a in self.kind_code and b in self.kind_code
        }
        self.rest = problem.rules.min_rest_minutes or 0
        self.pairs = self._pairs(eligible)
        self.pair_count = len(self.pairs.volunteer)
        self.pruned = False
        # who works what: -1 or the shift position, per volunteer and dense day
        self.assigned = np.full((self.n_volunteers, self.days), -1, dtype=np.int64)
        self.pinned_day = np.zeros((self.n_volunteers, self.days), dtype=bool)
        for pair in problem.pinned:
            v, s = self.index.volunteer_pos[pair.volunteer], self.index.shift_pos[pair.shift]
            self.assigned[v, self.s_day[s]] = s
            self.pinned_day[v, self.s_day[s]] = True
        self.s_room = np.array([s.max_people for s in problem.shifts], dtype=np.int64)
        self.s_required = np.array([s.required for s in problem.shifts], dtype=np.int64)
        self.s_under = np.array([problem.under_weight(s) for s in problem.shifts], dtype=np.int64)
        self.min_minutes = int(self.s_minutes.min()) if len(self.s_minutes) else 0
        self.pricing = False
        skill_codes = sorted({k for s in problem.shifts for k in s.skills})
        self.s_needs = {
            k: np.array([k in s.skills for s in problem.shifts], dtype=bool) for k in skill_codes
        }
        self.has_skill = {
            k: np.array([k in v.skills for v in volunteers], dtype=bool) for k in skill_codes
        }

    def _pairs(self, eligible: Sequence[Sequence[int] | np.ndarray]) -> _Pairs:
        problem = self.problem
        weights = problem.weights
        # Shifts in day order, so the pairs come out grouped by day without sorting millions.
        by_day = np.argsort(self.s_day, kind="stable")
        arrays = [np.asarray(eligible[s], dtype=np.int64) for s in by_day.tolist()]
        sizes = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
        shift = np.repeat(by_day, sizes)
        volunteer = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        self.shift_first = np.zeros(len(eligible), dtype=np.int64)
        self.shift_first[by_day] = np.cumsum(sizes) - sizes
        self.shift_size = np.zeros(len(eligible), dtype=np.int64)
        self.shift_size[by_day] = sizes
        cost = np.zeros(len(shift), dtype=np.int64)
        if weights.distance:
            v_lat, v_lon = radians_of(v.location for v in problem.volunteers)
            s_lat, s_lon = radians_of(s.location for s in problem.shifts)
            h = haversine_term(v_lat[volunteer], v_lon[volunteer], s_lat[shift], s_lon[shift])
            km = np.floor(km_of_term(h))
            cost += np.nan_to_num(km, nan=0.0).astype(np.int64) * weights.distance
        extra: dict[tuple[int, int], int] = {}
        for v, person in enumerate(problem.volunteers):
            for request in person.requests:
                s = self.index.shift_pos.get(request.shift)
                if s is not None:
                    delta = -request.weight if request.want else request.weight
                    extra[(v, s)] = extra.get((v, s), 0) + delta
        for pair in set(problem.previous):
            key = (self.index.volunteer_pos[pair.volunteer], self.index.shift_pos[pair.shift])
            extra[key] = extra.get(key, 0) - weights.change
        special = np.zeros(len(shift), dtype=bool)
        for (v, s), delta in extra.items():
            first = int(self.shift_first[s])
            segment = volunteer[first : first + int(self.shift_size[s])]
            at = first + np.flatnonzero(segment == v)
            cost[at] += delta
            special[at] = True
        day_start = np.searchsorted(self.s_day[shift], np.arange(self.days + 1))
        return _Pairs(volunteer, shift, cost, day_start, special)

    def prune(self, per_place: int, per_person: int) -> None:
        """Keep only the pairs a good roster is likely to use, for problems whose full day
        flows would not fit the time limit (a 20 km reach gives every post thousands of
        candidates): at each post location the `per_place` x (its most places on one day)
        nearest volunteers (and as many of the nearest who hold each skill needed there),
        each volunteer's `per_person` nearest post locations, every volunteer or shift without
        a location, and every pair with a request or previous-plan term. The full set stays
        at hand: `widen` gives a shift all its candidates back (see `sweep_days`). The flows
        are then exact on the kept pairs only, and no bound is proven from them."""
        problem = self.problem
        locations = sorted(
            {s.location for s in problem.shifts if s.location is not None},
            key=lambda loc: (loc.lat, loc.lon),
        )
        where: dict[Location | None, int] = {loc: i for i, loc in enumerate(locations)}
        s_loc = np.array([where.get(s.location, -1) for s in problem.shifts], dtype=np.int64)
        people = problem.volunteers
        v_lat, v_lon = radians_of(v.location for v in people)
        l_lat, l_lon = radians_of(locations)
        # Haversine terms (monotone in distance), volunteers x locations, in float32.
        far = np.float32(np.inf)
        h = np.empty((len(people), len(locations)), dtype=np.float32)
        for first in range(0, len(people), 4096):
            rows = slice(first, first + 4096)
            h[rows] = haversine_term(v_lat[rows, None], v_lon[rows, None], l_lat, l_lon)
        h[np.isnan(h)] = far
        places = np.zeros((len(locations), self.days), dtype=np.int64)
        located = s_loc >= 0
        np.add.at(places, (s_loc[located], self.s_day[located]), self.s_room[located])
        wanted = np.maximum(per_place, per_place * places.max(axis=1, initial=0))
        near = np.zeros(h.shape, dtype=bool)
        _mark_nearest(near, h, wanted)
        for skill, has in self.has_skill.items():
            needing = np.zeros(len(locations), dtype=bool)
            needing[s_loc[located & self.s_needs[skill]]] = True
            if needing.any():
                holders = np.where(has[:, None], h, far)
                _mark_nearest(near, holders, np.where(needing, wanted, 0))
        if len(locations):
            count = min(per_person, len(locations))
            nearest = np.argpartition(h, count - 1, axis=1)[:, :count]
            near[np.arange(len(people))[:, None], nearest] = True
        pairs = self.pairs
        self.full_pairs = pairs
        loc = s_loc[pairs.shift]
        keep = pairs.special | (loc < 0) | np.isnan(v_lat)[pairs.volunteer]
        keep |= near[pairs.volunteer, np.maximum(loc, 0)] & (loc >= 0)
        self.kept = keep
        self.widened = np.zeros(len(problem.shifts), dtype=bool)
        self.pruned = True
        self._use(keep)

    def widen(self, shifts: np.ndarray) -> int:
        """Give these shifts every eligible candidate back; returns how many were widened."""
        if not self.pruned:
            return 0
        fresh = shifts[~self.widened[shifts]]
        if not len(fresh):
            return 0
        self.widened[fresh] = True
        self.kept |= self.widened[self.full_pairs.shift]
        self._use(self.kept)
        return len(fresh)

    def _use(self, keep: np.ndarray) -> None:
        full = self.full_pairs
        shift = full.shift[keep]
        self.pairs = _Pairs(
            full.volunteer[keep],
            shift,
            full.cost[keep],
            np.searchsorted(self.s_day[shift], np.arange(self.days + 1)),
            full.special[keep],
        )
        self.pair_count = len(shift)
        self.shift_first[:] = 0
        self.shift_size[:] = 0
        present, first, size = np.unique(shift, return_index=True, return_counts=True)
        self.shift_first[present] = first
        self.shift_size[present] = size

    # ------------------------------------------------------------------ one day

    def _others(self, day: int) -> dict[str, np.ndarray]:
        """Per-volunteer facts of every day but `day`."""
        others = self.assigned.copy()
        others[:, day] = -1
        works = others >= 0
        taken = np.where(works, others, 0)
        minutes = np.where(works, self.s_minutes[taken], 0)
        week = self.day_week[day]
        in_week = (self.day_week == week) & (week >= 0)
        facts = {
            "minutes": minutes.sum(axis=1),
            "week_minutes": minutes[:, in_week].sum(axis=1),
            "shifts": works.sum(axis=1),
        }
        before, after = works[:, :day], works[:, day + 1 :]
        ends = np.where(works, self.s_end[taken], FAR_PAST)
        starts = np.where(works, self.s_start[taken], FAR_FUTURE)
        facts["prev_end"] = (
            ends[:, :day].max(axis=1) if day else np.full(self.n_volunteers, FAR_PAST)
        )
        facts["next_start"] = (
            starts[:, day + 1 :].min(axis=1)
            if day + 1 < self.days
            else np.full(self.n_volunteers, FAR_FUTURE)
        )
        kinds = np.where(works, self.s_kind[taken], -1)
        facts["prev_kind"] = kinds[:, day - 1] if day else np.full(self.n_volunteers, -1)
        facts["next_kind"] = (
            kinds[:, day + 1] if day + 1 < self.days else np.full(self.n_volunteers, -1)
        )
        for code in self.kind_caps:
            facts[f"kind{code}"] = (kinds == code).sum(axis=1)
        # Lengths of the worked stretches just before and just after the day.
        left = np.zeros(self.n_volunteers, dtype=np.int64)
        alive = np.ones(self.n_volunteers, dtype=bool)
        for k in range(day - 1, -1, -1):
            alive &= before[:, k]
            if not alive.any():
                break
            left += alive
        right = np.zeros(self.n_volunteers, dtype=np.int64)
        alive = np.ones(self.n_volunteers, dtype=bool)
        for k in range(after.shape[1]):
            alive &= after[:, k]
            if not alive.any():
                break
            right += alive
        facts["stretch"] = left + right
        weekend = self.day_weekend[day]
        if weekend >= 0 and (self.max_weekends < NO_LIMIT).any():
            worked_weekends = np.zeros(self.n_volunteers, dtype=np.int64)
            this_weekend = np.zeros(self.n_volunteers, dtype=bool)
            for w in sorted(set(self.day_weekend[self.day_weekend >= 0].tolist())):
                on = works[:, self.day_weekend == w].any(axis=1)
                worked_weekends += on
                if w == weekend:
                    this_weekend = np.asarray(on, dtype=bool)
            facts["weekends_added"] = worked_weekends + ~this_weekend
        return facts

    def _allowed(self, day: int, volunteer: np.ndarray, shift: np.ndarray) -> np.ndarray:
        o = self._others(day)
        minutes = self.s_minutes[shift]
        ok = ~self.pinned_day[volunteer, day]
        ok &= o["minutes"][volunteer] + minutes <= self.max_minutes[volunteer]
        ok &= o["week_minutes"][volunteer] + minutes <= self.max_week[volunteer]
        ok &= o["shifts"][volunteer] + 1 <= self.max_shifts[volunteer]
        for code, cap in self.kind_caps.items():
            is_kind = self.s_kind[shift] == code
            ok &= ~is_kind | (o[f"kind{code}"][volunteer] + 1 <= cap[volunteer])
        ok &= o["prev_end"][volunteer] + self.rest <= self.s_start[shift]
        ok &= self.s_end[shift] + self.rest <= o["next_start"][volunteer]
        for first, second in self.successions:
            kind = self.s_kind[shift]
            ok &= ~((o["prev_kind"][volunteer] == first) & (kind == second))
            ok &= ~((kind == first) & (o["next_kind"][volunteer] == second))
        ok &= o["stretch"][volunteer] + 1 <= self.max_consecutive[volunteer]
        if "weekends_added" in o:
            ok &= o["weekends_added"][volunteer] <= self.max_weekends[volunteer]
        self._others_now = o
        return ok

    def _budget_prices(self, day: int, volunteer: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """What taking a shift today costs a volunteer whose caps it would exhaust, while a
        place on another day is empty that they could fill: the value of that place, less one
        (so a place today that only they can fill still wins). Without this, a cap spent on an
        easy day keeps the only possible volunteer from a short shift on another day."""
        short = self.short_shifts()
        short = short[self.s_day[short] != day]
        price = np.zeros(self.n_volunteers, dtype=np.int64)
        for s in short.tolist():
            first = self.shift_first[s]
            people = self.pairs.volunteer[first : first + self.shift_size[s]]
            free = people[self.assigned[people, self.s_day[s]] < 0]
            np.maximum.at(price, free, self.s_under[s] - 1)
        o = self._others_now
        minutes = self.s_minutes[shift] + self.min_minutes
        exhausted = o["shifts"][volunteer] + 2 > self.max_shifts[volunteer]
        exhausted |= o["minutes"][volunteer] + minutes > self.max_minutes[volunteer]
        exhausted |= o["week_minutes"][volunteer] + minutes > self.max_week[volunteer]
        return np.where(exhausted, price[volunteer], 0)

    def solve_day(self, day: int) -> int:
        """Re-assign one day optimally given every other day; returns that day's flow cost."""
        problem = self.problem
        lo, hi = self.pairs.day_start[day], self.pairs.day_start[day + 1]
        if lo == hi:
            return 0
        volunteer, shift = self.pairs.volunteer[lo:hi], self.pairs.shift[lo:hi]
        ok = self._allowed(day, volunteer, shift)
        volunteer, shift, cost = volunteer[ok], shift[ok], self.pairs.cost[lo:hi][ok]
        other = self._others_now["minutes"]
        if self.pricing:
            cost = cost + self._budget_prices(day, volunteer, shift)
        target = self.target[volunteer]
        fair = problem.weights.fairness
        if fair:
            base = other[volunteer]
            added = np.maximum(0, base + self.s_minutes[shift] - target) - np.maximum(
                0, base - target
            )
            cost = cost + np.where(target >= 0, added * fair, 0)
        day_shifts = np.flatnonzero(self.s_day == day)
        pinned_staff: dict[int, list[int]] = {}
        for v in np.flatnonzero(self.pinned_day[:, day]).tolist():
            pinned_staff.setdefault(int(self.assigned[v, day]), []).append(v)
        # Nodes: 0 source, 1 sink, then volunteers, then per shift its node, its general-place
        # node and one node per needed skill.
        people, v_node = np.unique(volunteer, return_inverse=True)
        n_people = len(people)
        next_node = 2 + n_people
        tails: list[np.ndarray] = [np.zeros(n_people, dtype=np.int64), np.array([0])]
        heads: list[np.ndarray] = [np.arange(2, 2 + n_people, dtype=np.int64), np.array([1])]
        caps: list[np.ndarray] = [np.ones(n_people, dtype=np.int64), np.array([n_people])]
        costs: list[np.ndarray] = [np.zeros(n_people, dtype=np.int64), np.array([0])]
        general = np.zeros(len(problem.shifts), dtype=np.int64)
        skill_node: dict[tuple[int, str], int] = {}
        small_t: list[int] = []
        small_h: list[int] = []
        small_c: list[int] = []
        small_u: list[int] = []
        for s in day_shifts.tolist():
            spec = problem.shifts[s]
            staff = pinned_staff.get(s, [])
            node, general[s] = next_node, next_node + 1
            next_node += 2
            required = max(0, spec.required - len(staff))
            room = max(0, spec.max_people - len(staff))
            small_t += [general[s]]
            small_h += [node]
            small_c += [room]
            small_u += [0]
            if required:
                small_t.append(node)
                small_h.append(1)
                small_c.append(min(required, room))
                small_u.append(-problem.under_weight(spec))
            if room > required:
                small_t.append(node)
                small_h.append(1)
                small_c.append(room - required)
                small_u.append(problem.over_weight(spec))
            for skill, need in spec.skills.items():
                missing = need - sum(1 for v in staff if skill in problem.volunteers[v].skills)
                if missing <= 0:
                    continue
                skill_node[(s, skill)] = next_node
                small_t.append(next_node)
                small_h.append(node)
                small_c.append(missing)
                small_u.append(-problem.weights.skill_under)
                next_node += 1
        tails.append(np.array(small_t, dtype=np.int64))
        heads.append(np.array(small_h, dtype=np.int64))
        caps.append(np.array(small_c, dtype=np.int64))
        costs.append(np.array(small_u, dtype=np.int64))
        pair_tail = v_node + 2
        tails.append(pair_tail)
        heads.append(general[shift])
        caps.append(np.ones(len(shift), dtype=np.int64))
        costs.append(cost)
        arc_pair = [np.arange(len(shift))]
        for skill, has in self.has_skill.items():
            node_of = np.full(len(problem.shifts), -1, dtype=np.int64)
            for (s, wanted), node in skill_node.items():
                if wanted == skill:
                    node_of[s] = node
            picks = np.flatnonzero((node_of[shift] >= 0) & has[volunteer])
            if len(picks):
                tails.append(pair_tail[picks])
                heads.append(node_of[shift[picks]])
                caps.append(np.ones(len(picks), dtype=np.int64))
                costs.append(cost[picks])
                arc_pair.append(picks)
        flow = min_cost_flow.SimpleMinCostFlow()
        first_pair_arc = sum(len(t) for t in tails[:3])
        flow.add_arcs_with_capacity_and_unit_cost(
            np.concatenate(tails),
            np.concatenate(heads),
            np.concatenate(caps),
            np.concatenate(costs),
        )
        flow.set_nodes_supplies(np.array([0, 1]), np.array([n_people, -n_people]))
        if flow.solve() != flow.OPTIMAL:  # pragma: no cover - a bipartite flow always solves
            raise RuntimeError("the day's assignment flow did not solve")
        used = flow.flows(np.arange(first_pair_arc, flow.num_arcs())) > 0
        chosen = np.concatenate(arc_pair)[used]
        self.assigned[~self.pinned_day[:, day], day] = -1
        self.assigned[volunteer[chosen], day] = shift[chosen]
        return int(flow.optimal_cost())

    def short_shifts(self) -> np.ndarray:
        """Positions of the shifts below their required head count now."""
        working = self.assigned[self.assigned >= 0]
        staffed = np.bincount(working, minlength=len(self.problem.shifts))
        return np.flatnonzero(staffed < self.s_required)

    def pairs_now(self) -> tuple[Pair, ...]:
        v, d = np.nonzero(self.assigned >= 0)
        s = self.assigned[v, d]
        order = np.lexsort((v, s))
        ids_v = [p.id for p in self.problem.volunteers]
        ids_s = [p.id for p in self.problem.shifts]
        return tuple(Pair(ids_v[v[i]], ids_s[s[i]]) for i in order.tolist())

    def load(self, pairs: Sequence[Pair]) -> None:
        for pair in pairs:
            v, s = self.index.volunteer_pos[pair.volunteer], self.index.shift_pos[pair.shift]
            self.assigned[v, self.s_day[s]] = s

    def load_valid_part(self, volunteers: np.ndarray, shifts: np.ndarray) -> None:
        """Start from as much of a rule-breaking roster as keeps every hard rule: its pairs are
        taken person by person, day by day, each only if the person may still take it."""
        roster = Roster(self.index)
        for v, day in zip(*np.nonzero(self.pinned_day), strict=True):
            roster.assign(int(v), int(self.assigned[v, day]))
        order = np.lexsort((self.s_start[shifts], volunteers))
        for v, s in zip(volunteers[order].tolist(), shifts[order].tolist(), strict=True):
            if not self.pinned_day[v, self.s_day[s]] and roster.can_take(v, s):
                roster.assign(v, s)
                self.assigned[v, self.s_day[s]] = s


def day_by_day(
    problem: Problem,
    eligible: Sequence[Sequence[int] | np.ndarray],
    deadline: float,
    start: Sequence[Pair] = (),
    on_sweep: Callable[[int, int], None] | None = None,
    index: ProblemIndex | None = None,
) -> Sweeps:
    """Sweep the days, each re-assigned by min-cost flow, until a whole sweep changes nothing
    or the deadline (a `time.monotonic()` instant) would pass during the next day; then, while
    time remains, sweeps with budget prices (see `DayFlow._budget_prices`), keeping the best
    roster by its true cost.

    :param start: a valid roster to start from (pinned pairs are always kept); empty builds one.
    :return: the roster, its objective parts, the number of day flows solved and of sweeps
        begun.
    """
    search = DayFlow(problem, eligible, index)
    search.load(start)
    return sweep_days(search, deadline, on_sweep)


class Sweeps(NamedTuple):
    pairs: tuple[Pair, ...]
    parts: dict[str, int]  # the roster's objective parts, as `score` gives them
    solved: int  # day flows solved
    sweeps: int  # sweeps begun


def sweep_days(
    search: DayFlow,
    deadline: float,
    on_sweep: Callable[[int, int], None] | None = None,
) -> Sweeps:
    """`day_by_day` on a search already built and loaded.

    A day's flow may return another assignment of the same cost each time (ties), so sweeps
    stop when `PATIENCE` sweeps in a row have not lowered the roster's true cost, first without
    budget prices and then with them; the best roster seen is returned, with its score (the
    caller need not score it again: 40,000 volunteers, ~0.4 s).
    """
    solved, sweep, per_day, stale = 0, 0, 0.0, 0
    # Scoring the roster, once at the end of a sweep and once more to return the best, takes
    # time too (40,000 volunteers: a few tenths of a second); stopping a day's flow short of
    # the deadline leaves room for it, so the whole search ends by the deadline.
    scoring = 0.0
    best: tuple[int, np.ndarray] | None = None
    while True:
        sweep += 1
        for day in range(search.days):
            if solved and time.monotonic() + per_day + scoring > deadline:
                return _best(search, best, solved, sweep)
            began = time.monotonic()
            search.solve_day(day)
            per_day = max(per_day * 0.5, time.monotonic() - began)
            solved += 1
        began = time.monotonic()
        cost = sum(score(search.index, search.pairs_now()).values())
        scoring = 2 * (time.monotonic() - began)
        if on_sweep is not None:
            on_sweep(sweep, cost)
        if search.pruned and search.widen(search.short_shifts()):
            stale = 0  # pruning may be what left them short: try them on every candidate
        if best is None or cost < best[0]:
            best, stale = (cost, search.assigned.copy()), 0
            continue
        stale += 1
        if stale >= PATIENCE:
            if search.pricing:
                return _best(search, best, solved, sweep)
            search.pricing, stale = True, 0


def _best(search: DayFlow, best: tuple[int, np.ndarray] | None, solved: int, sweep: int) -> Sweeps:
    pairs = search.pairs_now()
    parts = score(search.index, pairs)
    if best is not None and best[0] < sum(parts.values()):
        search.assigned = best[1]
        pairs = search.pairs_now()
        parts = score(search.index, pairs)
    return Sweeps(pairs, parts, solved, sweep)
