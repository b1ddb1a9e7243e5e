"""Co-design on an execution backend: a batch scored through `Problem.draw` / `score_many` is the run of `score`
called one design after another -- same figures, same records, same evaluation count (the backends' equality on
real processes and Ray is tested in tests/test_distributed.py)."""

from __future__ import annotations

import numpy as np

from rlmap.codesign.digamma import random_maps
from rlmap.codesign.evaluate import Workload
from rlmap.codesign.problem import Problem
from rlmap.codesign.space import load_space
from rlmap.execution import Backend
from rlmap.spec.layer import Layer, Network

NET = Network(
    name="tiny",
    layers=[
        Layer(name="conv", K=16, C=8, P=8, Q=8, R=3, S=3, padding=(1, 1)),
        Layer(name="fc", kind="gemm", K=32, C=16, P=4),
    ],
)


class Reversed(Backend):
    """Runs the tasks here, last first, and counts them: results must not depend on completion order."""

    def __init__(self) -> None:
        self.tasks = 0

    def imap_unordered(self, fn, args):  # type: ignore[no-untyped-def]
        for i in reversed(range(len(args))):
            self.tasks += 1
            yield i, fn(args[i])


def _designs(p: Problem, n: int) -> list:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(n):
        hw = p.space.random(1, rng)[0]
        out.append((hw, random_maps(p, hw, rng)))
    out.insert(2, out[0])  # a repeat: its layers are cached, it costs nothing
    hw, maps = out[1]
    out.insert(4, (hw, [maps[0], random_maps(p, hw, rng)[1]]))  # same hardware, one layer new: costs one
    return out


def _problem(budget: int = 10_000) -> Problem:
    return Problem(load_space(None, "envs/space/edge.yaml"), Workload.from_network(NET), "latency", 1.03, budget)


def test_a_batch_on_any_backend_is_the_one_by_one_run() -> None:
    seq, bat = _problem(), _problem()
    designs = _designs(seq, 5)
    costs = [seq.score(hw, maps) for hw, maps in designs]
    bat.backend = backend = Reversed()
    seen: list[int] = []
    got = bat.score_many(designs, lambda i, c: seen.append(bat.evaluations))
    assert seq.evaluations == bat.evaluations == 2 * 5 + 1  # 5 fresh designs x 2 layers, the repeat free, +1
    assert seen == [r.evaluations for r in seq.history]  # `then` runs right after each design is recorded
    assert backend.tasks == 6  # one task per design with anything new to evaluate
    assert [(c.cycles, c.energy, c.area_mm2) for c in got] == [(c.cycles, c.energy, c.area_mm2) for c in costs]
    assert [(r.evaluations, r.hw, r.cycles) for r in bat.history] == [
        (r.evaluations, r.hw, r.cycles) for r in seq.history
    ]
    assert bat.best_value == seq.best_value


def test_draw_stops_where_one_by_one_scoring_would() -> None:
    p = _problem(budget=7)  # room for 3 fresh designs of 2 layers (the 4th would pass 7), repeats free
    pool = _designs(p, 5)
    calls = iter(pool)
    drawn = p.draw(10, lambda: next(calls))
    assert len(drawn) == 4  # fresh, fresh, repeat (free), fresh: 6 spent, a 4th fresh one would exceed 7
    p.score_many(drawn)
    assert p.evaluations == 6 and p.exhausted
