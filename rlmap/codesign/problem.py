"""The co-design problem every optimiser shares, and its one evaluation counter.

One *evaluation* is one cost-model scoring of one layer's mapping, whoever asks for it: a joint-genome
optimiser spends one per distinct layer of each design it scores (`Problem.score`), a two-loop optimiser
what its inner mapper spent per layer (`Problem.charge`).  As in rlmap's mappers (BudgetedEvaluator), a
(hardware, layer, mapping) already scored is not scored or charged again: its figures are cached, so a
design that changes only some layers' mappings costs only those layers.  Every scored design is recorded
(evaluations so far, seconds, figures, hardware genes) for the search curves and the Pareto front, and the
best feasible one (objective under the area budget) is kept with its mappings.

Where the evaluations run is the Problem's `backend` (rlmap.execution: `-j N` local processes or `--ray`):
an optimiser `draw`s the designs of a step (as many as the budget allows, counted as `score` would count them,
without evaluating), then `score_many` runs their new layer evaluations as backend tasks (one per design) and
records the designs in order.  The results, the counter and the records equal those of `score` called one
design after another, whatever the backend and its number of workers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlmap.codesign.evaluate import DesignCost, Workload, compose, evaluate_layers
from rlmap.codesign.space import DesignSpace
from rlmap.search.mapspace import Genome

MAX_EVALUATIONS = 1_000_000
"""Most cost-model evaluations per optimiser (`rlmap codesign -e`): a run keeps every design it scores (for the
Pareto front and the curves) and checkpoints them all after every step, so more would not fit in memory or time."""

MAX_POPULATION = 10_000
"""Most designs per step (`rlmap codesign --population`)."""


@dataclass
class Record:
    evaluations: int
    seconds: float
    hw: tuple[int, ...]
    area_mm2: float
    energy: float
    cycles: float
    mapped: bool
    feasible: bool
    objective: float


@dataclass
class Problem:
    """Space + workload + objective + area budget, with the evaluation budget and what has been spent."""

    space: DesignSpace
    workload: Workload
    objective: str = "latency"
    budget_mm2: float = math.inf
    max_evaluations: int = 10_000
    time_limit: float | None = None
    evaluations: int = 0
    seconds: float = 0.0  # search time spent before this process (resume)
    history: list[Record] = field(default_factory=list)
    best_value: float = math.inf
    best_hw: np.ndarray | None = None
    best_maps: list[Genome] | None = None
    best_cost: DesignCost | None = None
    cache: dict[bytes, tuple[bool, float, float]] = field(default_factory=dict, repr=False)
    backend: Any = field(default=None, repr=False)  # rlmap.execution.Backend; None: evaluate in this process
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["seconds"] = self.elapsed
        state["backend"] = None  # a live backend (process pool, Ray connection) is not saved; the runner sets it
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return self.seconds + max(0.0, time.perf_counter() - self._t0)

    @property
    def per_design(self) -> int:
        return len(self.workload)

    @property
    def exhausted(self) -> bool:
        return self.would_exhaust(0)

    def would_exhaust(self, pending: int) -> bool:
        """`exhausted` once `pending` more evaluations are spent."""
        if self.evaluations + pending + self.per_design > self.max_evaluations:
            return True
        return self.time_limit is not None and self.elapsed >= self.time_limit

    def keys(self, hw: np.ndarray, maps: list[Genome]) -> list[bytes]:
        """The cache key of each layer's (hardware, layer, mapping)."""
        hk = np.asarray(hw, dtype=np.int64).tobytes()
        return [
            hk + i.to_bytes(4, "little") + m.slots.astype(np.int16).tobytes() + m.order.astype(np.int8).tobytes()
            for i, m in enumerate(maps)
        ]

    def draw(
        self, n: int, make: Callable[[], tuple[np.ndarray, list[Genome]]]
    ) -> list[tuple[np.ndarray, list[Genome]]]:
        """Up to `n` designs from `make()`, stopping (before calling it) where scoring the ones drawn so far one by
        one would exhaust the budget: the designs a loop of `if exhausted: break; score(make())` scores."""
        out: list[tuple[np.ndarray, list[Genome]]] = []
        seen: set[bytes] = set()
        for _ in range(n):
            if self.would_exhaust(len(seen)):
                break
            hw, maps = make()
            seen.update(k for k in self.keys(hw, maps) if k not in self.cache)
            out.append((hw, maps))
        return out

    def score_many(
        self, designs: Sequence[tuple[np.ndarray, list[Genome]]], then: Callable[[int, DesignCost], None] | None = None
    ) -> list[DesignCost]:
        """`[score(hw, maps) for hw, maps in designs]`, with the new layer evaluations run as backend tasks (one per
        design); `then(i, cost)` is called right after design i is recorded, as code after `score` would run."""
        from rlmap.execution import LocalBackend, run_tasks

        keys = [self.keys(hw, maps) for hw, maps in designs]
        seen: set[bytes] = set()
        missing: list[list[int]] = []
        for ks in keys:  # each design evaluates the layers no earlier design (nor the cache) has
            new = [i for i, k in enumerate(ks) if k not in self.cache and k not in seen]
            seen.update(ks[i] for i in new)
            missing.append(new)
        todo = [d for d in range(len(designs)) if missing[d]]
        args = [(self.space.decode(designs[d][0]), designs[d][1], self.workload, missing[d]) for d in todo]
        backend = self.backend if self.backend is not None else LocalBackend(1)
        for d, res in zip(todo, run_tasks(backend, layers_task, args)):
            for i, r in zip(missing[d], res):
                self.cache[keys[d][i]] = r
        out = []
        for d, (hw, maps) in enumerate(designs):
            self.evaluations += len(missing[d])
            cost = self._compose(hw, maps, keys[d])
            out.append(cost)
            if then is not None:
                then(d, cost)
        return out

    def area(self, hw: np.ndarray) -> float:
        """The area of a design (no cost-model evaluation: area is a closed form of the hardware)."""
        from rlmap.hardware.area import design_area

        return design_area(self.space.decode(hw)).total_mm2

    def charge(self, n: int) -> None:
        """Count `n` evaluations spent outside `score` (a two-loop optimiser's inner mapper)."""
        self.evaluations += int(n)

    def stop(self) -> None:
        """Freeze the clock (the run is over; `elapsed` no longer grows)."""
        self.seconds = self.elapsed
        self._t0 = float("inf")

    def score(self, hw: np.ndarray, maps: list[Genome]) -> DesignCost:
        """Score a design (one evaluation per layer not scored before on this hardware), record it, keep it if it
        is the best feasible one.  Same figures as `evaluate_design`."""
        return self.score_many([(hw, maps)])[0]

    def _compose(self, hw: np.ndarray, maps: list[Genome], keys: list[bytes]) -> DesignCost:
        """The design's figures from its (cached) layer figures; records it."""
        res = [self.cache[k] for k in keys]
        cost = compose(
            self.space.decode(hw),
            self.workload,
            np.array([r[0] for r in res], dtype=bool),
            np.array([r[1] for r in res]),
            np.array([r[2] for r in res]),
            self.budget_mm2,
        )
        self.record(hw, maps, cost)
        return cost

    def record(self, hw: np.ndarray, maps: list[Genome], cost: DesignCost) -> None:
        """Record a design whose every layer figure is already known (no evaluation charged)."""
        value = cost.objective(self.objective)
        self.history.append(
            Record(
                self.evaluations,
                self.elapsed,
                self.space.key(hw),
                cost.area_mm2,
                cost.energy,
                cost.cycles,
                cost.mapped,
                cost.feasible,
                value,
            )
        )
        if value < self.best_value:
            self.best_value, self.best_hw, self.best_cost = value, np.array(hw), cost
            self.best_maps = [Genome(m.slots.copy(), m.order.copy()) for m in maps]

    def run(self, fn: Callable[[Any], Any], args: Sequence[Any]) -> list[Any]:
        """`[fn(a) for a in args]` on the backend (in this process when none): a two-loop optimiser's inner mappings."""
        from rlmap.execution import LocalBackend, run_tasks

        return run_tasks(self.backend if self.backend is not None else LocalBackend(1), fn, args)

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(evaluations, seconds, best feasible objective so far) after each scored design."""
        if not self.history:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        ev = np.array([r.evaluations for r in self.history], dtype=np.int64)
        sec = np.array([r.seconds for r in self.history])
        best = np.minimum.accumulate(np.array([r.objective for r in self.history]))
        return ev, sec, best


def layers_task(arg: tuple) -> list[tuple[bool, float, float]]:
    """A backend task: (valid, energy, cycles) of the listed layers' mappings on one architecture."""
    arch, maps, workload, which = arg
    return evaluate_layers(arch, maps, workload, which)
