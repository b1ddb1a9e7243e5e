"""Sparsity-aware search (Kao et al., IISWC 2022): one mapping that stays good across the densities a layer
meets at run time.

A layer's activations are not equally sparse on every input, but a mapping is chosen once.  Given the
densities `d_1..d_K` (of one tensor, default the input activations) and optional probabilities, the robust
objective of a mapping m is, with `ref_k` the best objective found for density d_k alone,

    expected:   sum_k p_k * obj_k(m) / ref_k          worst:   max_k obj_k(m) / ref_k

so 1.0 means "as good as the best single-density mapping at every density".  (Raw objectives would let the
densest case dominate: EDP grows with density.)  A mapping invalid at any density (a compressed tile that
overflows when the data is denser) is invalid.

`SparsityAwareMapper` wraps any search mapper that takes a `model` and `initial` (random, ga, sa, marvel):

1. references -- the base mapper per density, `ref_frac` of the budget split evenly (or, with `reference`,
   another mapper such as the optimal one, whose evaluations are not counted against the budget);
2. robust search -- the base mapper on `RobustModel` (scores a mapping at every density with the real cost
   model and returns the robust objective), with the rest of the budget, seeded with every density's best.

Budget: one robust evaluation scores the mapping at K densities, so it counts as K cost-model evaluations
(the robust phase gets (rest of budget) / K mappings).  The result's mapping, cost (at the layer's own
density) and notes["densities"] report the robust mapping and the single-density mapping (the best for
the layer's own density, or the densest if that is not in the set) against every density's reference,
updated to the robust mapping's objective where that is better (so every reported ratio is >= 1).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from rlmap.model.costmodel import BatchCost, Cost, CostModel
from rlmap.search.base import SearchResult
from rlmap.search.random_search import check_args
from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping, MappingBatch
from rlmap.spec.problem import TENSORS

MODES = ("expected", "worst")


def parse_densities(text: str) -> tuple[list[float], list[float] | None]:
    """'0.2,0.5,1.0' (equally likely) or '0.2:0.3,0.5:0.5,1.0:0.2' (density:probability); SpecError otherwise."""
    dens: list[float] = []
    probs: list[float] = []
    try:
        for part in text.split(","):
            d, _, p = part.strip().partition(":")
            dens.append(float(d))
            if p:
                probs.append(float(p))
    except ValueError:
        raise SpecError(
            f"expected densities like 0.2,0.5,1.0 or 0.2:0.3,1.0:0.7, got {text!r}", "--densities"
        ) from None
    if not dens or any(not 0 < d <= 1 for d in dens):
        raise SpecError(f"densities must be in (0, 1], got {text!r}", "--densities")
    if probs and (len(probs) != len(dens) or any(p < 0 for p in probs) or sum(probs) <= 0):
        raise SpecError("give a probability for every density (or none), non-negative", "--densities")
    if len(set(dens)) != len(dens):
        raise SpecError(f"repeated density in {text!r}", "--densities")
    return dens, ([p / sum(probs) for p in probs] if probs else None)


def at_density(layer: Layer, density: float, tensor: str = "inputs") -> Layer:
    """The layer with one tensor's density replaced."""
    if tensor not in TENSORS:
        raise SpecError(f"unknown tensor {tensor!r} (expected one of {', '.join(TENSORS)})", "--density-tensor")
    return layer.model_copy(update={"density": layer.density.model_copy(update={tensor: density})})


class RobustModel(CostModel):
    """Scores mappings at every density; `evaluate_batch(...).edp` is the robust objective (energy holds it,
    cycles are 1), so any mapper run with objective 'edp' on this model minimises it.  Structure and
    capacities come from the densest layer (the tightest compressed tiles)."""

    def __init__(
        self,
        models: Sequence[CostModel],
        refs: Sequence[float],
        objective: str,
        mode: str,
        probs: Sequence[float] | None,
    ) -> None:
        dense = max(range(len(models)), key=lambda k: models[k].density)
        CostModel.__init__(self, models[dense].layer, models[dense].arch)
        self.models = list(models)
        self.refs = np.asarray(refs, dtype=np.float64)
        self.robust_objective = objective
        self.mode = mode
        self.probs = np.full(len(models), 1 / len(models)) if probs is None else np.asarray(probs, dtype=np.float64)

    def ratios(self, b: MappingBatch) -> tuple[np.ndarray, np.ndarray]:
        """(K, B) objective / reference per density, and validity at every density."""
        rows, valid = [], np.ones(len(b), dtype=bool)
        for m, ref in zip(self.models, self.refs):
            bc = m.evaluate_batch(b)
            valid &= bc.valid
            rows.append(bc.objective(self.robust_objective) / ref)
        return np.array(rows), valid

    def report(self, m: Mapping) -> dict[str, Any]:
        """One mapping's objective / reference at every density (inf where invalid), worst and expected."""
        r = np.array(
            [
                mod.evaluate_batch(m.to_arrays()).objective(self.robust_objective)[0] / ref
                for mod, ref in zip(self.models, self.refs)
            ]
        )
        r = np.where(np.isfinite(r), r, np.inf)
        return {
            "ratio_per_density": {f"{mod.density}": float(x) for mod, x in zip(self.models, r)},
            "worst": float(r.max()),
            "expected": float((self.probs * r).sum()),
        }

    def combine(self, r: np.ndarray) -> np.ndarray:
        return r.max(axis=0) if self.mode == "worst" else (self.probs[:, None] * r).sum(axis=0)

    def evaluate_batch(self, b: MappingBatch, relax_orders: bool = False) -> BatchCost:
        r, valid = self.ratios(b)
        score = np.where(valid, self.combine(r), np.inf)
        ones = np.where(valid, 1.0, np.inf)
        return BatchCost(
            valid=valid,
            energy=score,
            cycles=ones,
            utilization=np.zeros(len(b)),
            reason=np.where(valid, 0, 3),
            compute_cycles=ones,
            level_cycles=np.zeros((self.L, len(b))),
        )

    def evaluate(self, m: Mapping) -> Cost:
        bc = self.evaluate_batch(m.to_arrays())
        return Cost(
            valid=bool(bc.valid[0]),
            energy=float(bc.energy[0]),
            cycles=float(bc.cycles[0]),
            reason="" if bc.valid[0] else "invalid at some density",
        )


class SparsityAwareMapper:
    """A base mapper made density-robust; see the module docstring."""

    def __init__(
        self,
        base: Any,
        densities: Sequence[float],
        probs: Sequence[float] | None = None,
        mode: str = "worst",
        tensor: str = "inputs",
        ref_frac: float = 0.5,
        reference: Any = None,
    ) -> None:
        if mode not in MODES:
            raise SpecError(f"unknown mode {mode!r} (expected one of {', '.join(MODES)})", "--robust")
        self.base = base
        self.densities = list(densities)
        self.probs = probs
        self.mode = mode
        self.tensor = tensor
        self.ref_frac = ref_frac
        self.reference = reference  # mapper for the per-density references (default: the base mapper)
        self.name = f"{getattr(base, 'name', 'mapper')}+sparse-{mode}"

    def search(
        self,
        layer: Layer,
        arch: Architecture,
        objective: str = "edp",
        budget: int = 1000,
        seed: int = 0,
        model: CostModel | None = None,
        time_limit: float | None = None,
        initial: Sequence[Mapping] | None = None,
    ) -> SearchResult:
        check_args(objective, budget, time_limit)
        started = time.perf_counter()
        K = len(self.densities)
        layers = [at_density(layer, d, self.tensor) for d in self.densities]
        models = [CostModel(la, arch) for la in layers]
        per = max(1, int(self.ref_frac * budget) // K)
        ref_mapper = self.reference or self.base
        refs = [
            ref_mapper.search(la, arch, objective, per, seed + k, m, None, initial)
            for k, (la, m) in enumerate(zip(layers, models))
        ]
        if any(r.mapping is None for r in refs):
            bad = [d for d, r in zip(self.densities, refs) if r.mapping is None]
            raise SpecError(f"no valid mapping found at density {bad} with this budget", "--densities")
        ref_vals = [r.best for r in refs]
        robust_model = RobustModel(models, ref_vals, objective, self.mode, self.probs)
        used = sum(r.evaluations for r in refs) if self.reference is None else 0
        rest = max(1, (budget - used) // K)
        seeds = [r.mapping for r in refs if r.mapping is not None]
        res = self.base.search(robust_model.layer, arch, "edp", rest, seed + K, robust_model, time_limit, seeds)
        robust = res.mapping
        own = float(getattr(layer.density, self.tensor))
        single_k = self.densities.index(own) if own in self.densities else int(np.argmax(self.densities))
        single = refs[single_k].mapping
        if robust is not None:  # a reference is the best found for its density by either phase
            at = [mod.evaluate_batch(robust.to_arrays()).objective(objective)[0] for mod in models]
            ref_vals = [min(r, a) if np.isfinite(a) else r for r, a in zip(ref_vals, at)]
            robust_model = RobustModel(models, ref_vals, objective, self.mode, self.probs)
        report = {name: robust_model.report(m) for name, m in (("robust", robust), ("single", single)) if m is not None}
        cost = CostModel(layer, arch).evaluate(robust) if robust is not None else None
        curve = res.curve  # best-so-far robust objective per robust evaluation
        notes = {
            "densities": self.densities,
            "tensor": self.tensor,
            "mode": self.mode,
            "references": {str(d): v for d, v in zip(self.densities, ref_vals)},
            "single_density": self.densities[single_k],
            **report,
            "evaluations_per_robust_mapping": K,
        }
        return SearchResult(
            mapper=self.name,
            objective=objective,
            mapping=robust,
            cost=cost,
            evaluations=used + res.evaluations * K,
            curve=curve,
            seconds=time.perf_counter() - started,
            notes=notes,
        )
