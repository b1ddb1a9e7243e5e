"""Optimisers by name behind one interface, and the loop that runs one: progress, checkpoint, resume.

Every optimiser has `name` and `step(problem, rng)`, which scores a few designs through the Problem (the one
evaluation counter) and keeps its own state in attributes.  `run` calls `step` until the Problem's
evaluation budget (or time limit) is spent, pickling (optimiser, problem, rng state) after every step when
given a checkpoint file, so an interrupted run resumes where it stopped; with the same seed and no time
limit a run gives the same designs whether or not it was interrupted (all randomness comes from `rng`).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rlmap.codesign.baselines import NEVERGRAD, Nevergrad, PlainGA, RandomSearch
from rlmap.codesign.digamma import DiGamma
from rlmap.codesign.problem import Problem
from rlmap.codesign.twoloop import LearnedLoop, TwoLoop
from rlmap.spec.errors import SpecError

OPTIMIZERS: tuple[str, ...] = ("digamma", "random", "ga", *NEVERGRAD, "two-loop", "learned")
"""Names `make_optimizer` (and `rlmap codesign --optimizer`) accept."""


def make_optimizer(
    name: str,
    population: int = 20,
    inner_budget: int = 200,
    policy: Any = None,
    samples: int = 1,
    optimal_time_limit: float = 5.0,
) -> Any:
    key = name.strip().lower()
    if key == "digamma":
        return DiGamma(population=population)
    if key == "random":
        return RandomSearch(batch=population)
    if key == "ga":
        return PlainGA(population=population)
    if key in NEVERGRAD:
        return Nevergrad(key, batch=population)
    if key == "two-loop":
        return TwoLoop(inner="ga", inner_budget=inner_budget)
    if key == "learned":
        if policy is None:
            raise SpecError("the learned loop needs a policy (--policy)", "--optimizer")
        return LearnedLoop(policy, samples=samples, optimal_time_limit=optimal_time_limit)
    raise SpecError(f"unknown optimiser {name!r} (expected one of {', '.join(OPTIMIZERS)})", "--optimizer")


def save_checkpoint(path: Path, optimizer: Any, problem: Problem, rng: np.random.Generator, meta: dict) -> None:
    tmp = path.with_suffix(".tmp")
    try:
        with tmp.open("wb") as fh:
            pickle.dump({"optimizer": optimizer, "problem": problem, "rng": rng.bit_generator.state, "meta": meta}, fh)
        tmp.replace(path)
    except BaseException:  # Ctrl-C or a full disk while writing: no half-written .tmp is left behind
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, meta: dict) -> tuple[Any, Problem, np.random.Generator]:
    """(optimiser, problem, rng) from a checkpoint written for the same run (same `meta`), else SpecError."""
    try:
        with path.open("rb") as fh:
            state = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise SpecError(f"cannot resume: unreadable checkpoint ({type(exc).__name__})", str(path)) from None
    if state.get("meta") != meta:
        diff = sorted(k for k in set(meta) | set(state.get("meta", {})) if meta.get(k) != state["meta"].get(k))
        raise SpecError(
            f"cannot resume: the checkpoint is of a different run (differs in {', '.join(diff)}); "
            f"use another --output or drop --resume",
            str(path),
        )
    rng = np.random.default_rng()
    rng.bit_generator.state = state["rng"]
    return state["optimizer"], state["problem"], rng


def run(
    optimizer: Any,
    problem: Problem,
    seed: int,
    checkpoint: Path | None = None,
    resume: bool = False,
    meta: dict | None = None,
    progress: Callable[[Problem], None] | None = None,
    policy: Any = None,
    backend: Any = None,
) -> tuple[Any, Problem]:
    """Step `optimizer` until the problem's budget is spent; returns the (possibly resumed) optimiser and problem.

    backend -- where the evaluations run (rlmap.execution.Backend; default: the problem's, else this process);
               any backend, any number of workers: the same designs, figures and evaluation count.
    """
    rng = np.random.default_rng(seed)
    meta = dict(meta or {})
    backend = backend if backend is not None else problem.backend
    if resume and checkpoint is not None and checkpoint.exists():
        optimizer, problem, rng = load_checkpoint(checkpoint, meta)
        if hasattr(optimizer, "policy") and optimizer.policy is None:
            optimizer.policy = policy
    problem.backend = backend
    stalls = 0
    while not problem.exhausted and stalls < 20:
        before = problem.evaluations
        optimizer.step(problem, rng)
        if checkpoint is not None:
            save_checkpoint(checkpoint, optimizer, problem, rng, meta)
        if progress is not None:
            progress(problem)
        stalls = stalls + 1 if problem.evaluations == before else 0  # 20 steps with nothing new: stop
    problem.stop()
    problem.backend = None  # the backend outlives nothing it was lent to
    return optimizer, problem
