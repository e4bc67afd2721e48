"""A proven lower bound on the objective of any roster, by one min-cost flow over the horizon.

The flow relaxes the problem: source → volunteer → (volunteer, day) → place → shift → sink.
Each volunteer passes at most a count implied by their caps over the shortest shift (shift
count, total and weekly minutes, one a day), and pays for their k-th shift the fairness a roster
of k shortest shifts would cost at least (a convex series, so the flow takes them in order);
each pair costs its distance, request and previous-plan terms exactly; each shift pays under
and over cover exactly; a volunteer's needed skills are credited through a place that credits
all of them at once (more than a roster ever gets). Rest, overlap within a day, kind caps,
stretches and weekends are dropped, and minimum rules cannot raise a cost the flow ignores.
Every roster that keeps the hard rules is such a flow at no lower cost, so the flow's optimum
bounds every roster from below: a solver within x% of it is within x% of the optimum.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ortools.graph.python import min_cost_flow

from scheduling.dayflow import DayFlow
from scheduling.problem import Problem


def cost_lower_bound(
    problem: Problem, eligible: Sequence[Sequence[int] | np.ndarray], search: DayFlow | None = None
) -> int:
    """The bound; `search` (a DayFlow of the same problem) saves building the pair arrays."""
    return relaxed_roster(problem, eligible, search)[0]


def relaxed_roster(
    problem: Problem, eligible: Sequence[Sequence[int] | np.ndarray], search: DayFlow | None = None
) -> tuple[int, np.ndarray, np.ndarray]:
    """The bound and the relaxation's own roster (volunteer and shift positions), which breaks
    only the rules the flow drops and is a strong start for a search that keeps them all."""
    flow_data = search or DayFlow(problem, eligible)
    if flow_data.pruned:
        raise ValueError("a bound needs every eligible pair, not a pruned search")
    weights = problem.weights
    n_v, n_s, days = flow_data.n_volunteers, len(problem.shifts), flow_data.days
    pairs = flow_data.pairs
    shortest = flow_data.min_minutes or 1
    weeks = len({int(w) for w in flow_data.day_week if w >= 0}) or 1
    per_day = problem.rules.one_shift_per_day
    cap = np.minimum(flow_data.max_shifts, flow_data.max_minutes // shortest)
    cap = np.minimum(cap, weeks * (flow_data.max_week // shortest))
    cap = np.minimum(cap, days if per_day else n_s)
    tails: list[np.ndarray] = []
    heads: list[np.ndarray] = []
    caps: list[np.ndarray] = []
    costs: list[np.ndarray] = []

    def arcs(tail: np.ndarray, head: np.ndarray, capacity: np.ndarray, cost: np.ndarray) -> None:
        tails.append(np.asarray(tail, dtype=np.int64))
        heads.append(np.asarray(head, dtype=np.int64))
        caps.append(np.asarray(capacity, dtype=np.int64))
        costs.append(np.asarray(cost, dtype=np.int64))

    source, sink = 0, 1
    person = 2 + np.arange(n_v, dtype=np.int64)
    person_day = 2 + n_v  # first (volunteer, day) node
    shift_node = person_day + (n_v * days if per_day else 0)
    general = shift_node + n_s
    next_node = general + n_s
    target = flow_data.target
    most = int(min(cap.max(initial=0), days if per_day else n_s))
    for k in range(1, most + 1):
        who = np.flatnonzero(cap >= k)
        over_k = np.maximum(0, k * shortest - target[who])
        over_before = np.maximum(0, (k - 1) * shortest - target[who])
        fair = np.where(target[who] >= 0, (over_k - over_before) * weights.fairness, 0)
        arcs(np.full(len(who), source), person[who], np.ones(len(who)), fair)
    total_supply = int(cap.clip(min=0).sum())
    arcs(np.array([source]), np.array([sink]), np.array([total_supply]), np.array([0]))
    if per_day:
        v, d = np.divmod(np.arange(n_v * days, dtype=np.int64), days)
        arcs(person[v], person_day + v * days + d, np.ones(n_v * days), np.zeros(n_v * days))
        tail = person_day + pairs.volunteer * days + flow_data.s_day[pairs.shift]
    else:
        tail = person[pairs.volunteer]
    s_all = np.arange(n_s, dtype=np.int64)
    arcs(general + s_all, shift_node + s_all, flow_data.s_room, np.zeros(n_s))
    required = flow_data.s_required
    under = flow_data.s_under
    over = np.array([problem.over_weight(s) for s in problem.shifts], dtype=np.int64)
    arcs(shift_node + s_all, np.full(n_s, sink), np.minimum(required, flow_data.s_room), -under)
    extra = np.flatnonzero(flow_data.s_room > required)
    arcs(
        shift_node + extra,
        np.full(len(extra), sink),
        flow_data.s_room[extra] - required[extra],
        over[extra],
    )
    first_pair_arc = sum(len(t) for t in tails)
    arcs(tail, general + pairs.shift, np.ones(len(tail)), pairs.cost)
    # Skill places: one per (shift, set of needed skills a volunteer has), crediting the set.
    needed = sorted(flow_data.has_skill)
    if needed:
        bits = np.zeros(n_v, dtype=np.int64)
        for i, skill in enumerate(needed):
            bits |= flow_data.has_skill[skill].astype(np.int64) << i
        shift_bits = np.zeros(n_s, dtype=np.int64)
        most_needed = np.zeros(n_s, dtype=np.int64)
        for s, spec in enumerate(problem.shifts):
            for i, skill in enumerate(needed):
                if spec.skills.get(skill, 0) > 0:
                    shift_bits[s] |= 1 << i
                    most_needed[s] = max(most_needed[s], spec.skills[skill])
        common = bits[pairs.volunteer] & shift_bits[pairs.shift]
        has_any = np.flatnonzero(common)
        keys = pairs.shift[has_any] * (1 << len(needed)) + common[has_any]
        unique, node_of = np.unique(keys, return_inverse=True)
        place_shift, place_bits = np.divmod(unique, 1 << len(needed))
        credited = np.array([bin(b).count("1") for b in place_bits.tolist()], dtype=np.int64)
        places = next_node + np.arange(len(unique), dtype=np.int64)
        arcs(
            places,
            shift_node + place_shift,
            most_needed[place_shift],
            -credited * weights.skill_under,
        )
        arcs(tail[has_any], places[node_of], np.ones(len(has_any)), pairs.cost[has_any])
    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(
        np.concatenate(tails), np.concatenate(heads), np.concatenate(caps), np.concatenate(costs)
    )
    flow.set_nodes_supplies(np.array([source, sink]), np.array([total_supply, -total_supply]))
    if flow.solve() != flow.OPTIMAL:  # pragma: no cover - always feasible (the bypass arc)
        raise RuntimeError("the bounding flow did not solve")
    constant = int((required * under).sum())
    constant += sum(
        need * weights.skill_under for s in problem.shifts for need in s.skills.values()
    )
    constant += sum(r.weight for v in problem.volunteers for r in v.requests if r.want)
    constant += weights.change * len(set(problem.previous))
    used = flow.flows(np.arange(first_pair_arc, first_pair_arc + len(tail))) > 0
    taken = np.flatnonzero(used)
    if needed:
        skill_arcs = np.arange(flow.num_arcs() - len(has_any), flow.num_arcs())
        taken = np.concatenate([taken, has_any[flow.flows(skill_arcs) > 0]])
    return int(flow.optimal_cost()) + constant, pairs.volunteer[taken], pairs.shift[taken]
