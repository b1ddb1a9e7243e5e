"""The map space of a layer on an architecture: its size, and samplers of valid mappings.

A tiling assigns every prime factor of every dimension to a *slot*: the temporal loop, spatial X or
spatial Y of one memory level (slot index 3*level + {0, 1, 2}).  A mapping is a tiling plus a loop order
per level.  The genome used by the samplers and the genetic mapper is exactly that: one slot index per
prime-factor copy, plus one permutation per level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rlmap.model.costmodel import CostModel
from rlmap.spec.arch import Architecture
from rlmap.spec.factors import ordered_factorizations, prime_factors
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import MappingBatch
from rlmap.spec.problem import DIMS, N_DIMS

TEMPORAL, SPATIAL_X, SPATIAL_Y = 0, 1, 2


def format_big(n: float) -> str:
    """3.4e19 for big counts, the exact integer for small ones."""
    return f"{n:,}" if n < 1_000_000 else f"{float(n):.2g}".replace("e+", "e")


@dataclass
class Genome:
    """B mappings as genes: `slots[b, g]` is the slot of prime copy g, `order[b, l]` a permutation."""

    slots: np.ndarray  # (B, G) int
    order: np.ndarray  # (B, L, D) int

    def __len__(self) -> int:
        return int(self.order.shape[0])

    def take(self, idx: np.ndarray | slice) -> Genome:
        return Genome(self.slots[idx], self.order[idx])

    @staticmethod
    def concat(parts: list[Genome]) -> Genome:
        return Genome(np.concatenate([p.slots for p in parts]), np.concatenate([p.order for p in parts]))


class MapSpace:
    """Structure of the map space of one layer on one architecture."""

    def __init__(self, layer: Layer, arch: Architecture, model: CostModel | None = None) -> None:
        self.layer = layer
        self.arch = arch
        self.model = model or CostModel(layer, arch)
        self.dims = layer.problem_dims
        self.L = L = arch.n_levels
        self.n_slots = 3 * L
        allowed = np.zeros((N_DIMS, self.n_slots), dtype=bool)
        for lvl, level in enumerate(arch.levels):
            fan = level.fanout
            for d in range(N_DIMS):
                allowed[d, 3 * lvl + TEMPORAL] = True
                allowed[d, 3 * lvl + SPATIAL_X] = fan.x > 1 and (not fan.x_dims or DIMS[d] in fan.x_dims)
                allowed[d, 3 * lvl + SPATIAL_Y] = fan.y > 1 and (not fan.y_dims or DIMS[d] in fan.y_dims)
        self.allowed = allowed
        # prime-factor groups and their copies (genes)
        self.groups: list[tuple[int, int, int]] = []  # (dim, prime, multiplicity)
        gene_dim, gene_prime = [], []
        for d, n in enumerate(self.dims):
            for p, a in prime_factors(n):
                self.groups.append((d, p, a))
                gene_dim += [d] * a
                gene_prime += [p] * a
        self.gene_dim = np.array(gene_dim, dtype=np.int64)
        self.gene_prime = np.array(gene_prime, dtype=np.int64)
        self.n_genes = len(gene_dim)
        # genes are grouped by dim: the dims that have genes and where each one's genes start (for decode)
        self._gene_dims, self._dim_starts = np.unique(self.gene_dim, return_index=True)

    # ------------------------------------------------------------------ genome <-> mapping
    def decode(self, g: Genome) -> MappingBatch:
        """Factors per (level, dim) from gene slots; the loop orders pass through."""
        B = len(g)
        fac = np.ones((B, N_DIMS, self.n_slots), dtype=np.int64)
        if self.n_genes:  # vectorised: each gene's prime in its slot (1 elsewhere), multiplied over each dim's genes
            onehot = g.slots[:, :, None] == np.arange(self.n_slots)  # (B, G, S)
            f = np.where(onehot, self.gene_prime[None, :, None], 1)
            fac[:, self._gene_dims, :] = np.multiply.reduceat(f, self._dim_starts, axis=1)
        per_slot = fac.reshape(B, N_DIMS, self.L, 3).transpose(0, 2, 1, 3)  # (B, L, D, 3)
        return MappingBatch(
            temporal=np.ascontiguousarray(per_slot[..., TEMPORAL]),
            spatial_x=np.ascontiguousarray(per_slot[..., SPATIAL_X]),
            spatial_y=np.ascontiguousarray(per_slot[..., SPATIAL_Y]),
            order=g.order.copy(),
        )

    def encode(self, b: MappingBatch) -> Genome:
        """Genes for mappings (prime copies of a dim fill its slots outermost first)."""
        B = len(b)
        fac = np.stack([b.temporal, b.spatial_x, b.spatial_y], axis=-1)  # (B, L, D, 3)
        fac = fac.transpose(0, 2, 1, 3).reshape(B, N_DIMS, self.n_slots).copy()
        slots = np.zeros((B, self.n_genes), dtype=np.int64)
        for i in range(self.n_genes):
            d, p = self.gene_dim[i], self.gene_prime[i]
            divisible = fac[:, d, :] % p == 0
            s = np.argmax(divisible, axis=1)
            if not divisible[np.arange(B), s].all():
                raise ValueError("mapping factors do not match the layer's dimensions")
            slots[:, i] = s
            fac[np.arange(B), d, s] //= p
        return Genome(slots, b.order.copy())

    # ------------------------------------------------------------------ sizes
    @cached_property
    def tiling_count(self) -> int:
        """Number of distinct tilings (factor assignments to allowed slots), fanout not yet checked."""
        total = 1
        for d, _p, a in self.groups:
            k = int(self.allowed[d].sum())
            total *= math.comb(a + k - 1, k - 1)
        return total

    @cached_property
    def fanout_valid_tiling_count(self) -> int:
        """Exact count of tilings whose spatial factors fit every fanout (DP over dimensions)."""
        fan = [(lvl.fanout.x, lvl.fanout.y) for lvl in self.arch.levels]
        states: dict[tuple[int, ...], int] = {tuple([1] * (2 * self.L)): 1}
        for d, n in enumerate(self.dims):
            if n == 1:
                continue
            slots = np.flatnonzero(self.allowed[d])
            options: dict[tuple[int, ...], int] = {}
            for fs in ordered_factorizations(n, len(slots)):
                full = [1] * self.n_slots
                for s, f in zip(slots, fs):
                    full[s] = f
                key = tuple(full[3 * lvl + k] for lvl in range(self.L) for k in (SPATIAL_X, SPATIAL_Y))
                options[key] = options.get(key, 0) + 1
            nxt: dict[tuple[int, ...], int] = {}
            for st, cnt in states.items():
                for key, c2 in options.items():
                    new = tuple(a * b for a, b in zip(st, key))
                    if all(new[2 * lvl] <= fan[lvl][0] and new[2 * lvl + 1] <= fan[lvl][1] for lvl in range(self.L)):
                        nxt[new] = nxt.get(new, 0) + cnt * c2
            states = nxt
        return sum(states.values())

    @property
    def order_count(self) -> int:
        return math.factorial(N_DIMS) ** self.L

    def sizes(self) -> dict[str, int]:
        """Map-space size before and after the cheap exact pruning steps."""
        return {
            "tilings": self.tiling_count,
            "loop_orders": self.order_count,
            "total": self.tiling_count * self.order_count,
            "tilings_fitting_fanout": self.fanout_valid_tiling_count,
        }

    # ------------------------------------------------------------------ sampling
    def random_genomes(self, n: int, rng: np.random.Generator) -> Genome:
        """Uniform over tilings (stars and bars per prime group) and over loop orders; validity unchecked."""
        slots = np.zeros((n, self.n_genes), dtype=np.int64)
        col = 0
        for d, _p, a in self.groups:
            allowed = np.flatnonzero(self.allowed[d])
            k = len(allowed)
            if k == 1:
                slots[:, col : col + a] = allowed[0]
            else:
                # uniform composition of a identical copies into k bins: choose k-1 bar positions among a+k-1
                bars = np.sort(np.argsort(rng.random((n, a + k - 1)), axis=1)[:, : k - 1], axis=1)
                edges = np.concatenate([np.full((n, 1), -1), bars, np.full((n, 1), a + k - 1)], axis=1)
                counts = np.diff(edges, axis=1) - 1  # (n, k)
                cum = np.cumsum(counts, axis=1)
                bin_of_copy = (cum[:, None, :] <= np.arange(a)[None, :, None]).sum(axis=2)  # (n, a)
                slots[:, col : col + a] = allowed[bin_of_copy]
            col += a
        order = np.argsort(rng.random((n, self.L, N_DIMS)), axis=2)
        return Genome(slots, order)

    def sample(self, n: int, rng: np.random.Generator, max_draws: int = 20_000_000) -> tuple[Genome, float]:
        """`n` valid mappings drawn uniformly (tilings and orders), and the observed acceptance rate.

        Draws whole batches and keeps the valid ones (vectorised, no per-mapping loop).  When fewer than
        one draw in `max_draws` is valid the space is too tight for this, and the constructive sampler
        (valid by construction, not uniform) fills the remainder.
        """
        kept: list[Genome] = []
        have, drawn, accepted = 0, 0, 0
        batch = max(256, 4 * n)
        while have < n and drawn < max_draws:
            g = self.random_genomes(batch, rng)
            ok = self.model.evaluate_batch(self.decode(g)).valid
            drawn += batch
            accepted += int(ok.sum())
            if ok.any():
                kept.append(g.take(np.flatnonzero(ok)))
                have += int(ok.sum())
            rate = max(accepted / drawn, 1.0 / drawn)
            batch = int(min(max(1.2 * (n - have) / rate, 256), 200_000))
        if have < n:
            kept.append(self.constructive(n - have, rng))
        out = Genome.concat(kept).take(slice(0, n))
        return out, accepted / max(drawn, 1)

    def constructive(self, n: int, rng: np.random.Generator) -> Genome:
        """Valid by construction: place prime copies one at a time in a random slot that keeps the
        mapping valid (the outermost temporal slot always does, as tiles only grow inward-out)."""
        g = Genome(np.zeros((n, self.n_genes), dtype=np.int64), np.argsort(rng.random((n, self.L, N_DIMS)), axis=2))
        ar = np.arange(n)
        for i in rng.permutation(self.n_genes):
            d = self.gene_dim[i]
            cand = np.flatnonzero(self.allowed[d])
            ok = np.zeros((n, len(cand)), dtype=bool)
            for j, s in enumerate(cand):
                trial = Genome(g.slots.copy(), g.order)
                trial.slots[:, i] = s
                ok[:, j] = self.model.evaluate_batch(self.decode(trial)).valid
            ok[:, 0] |= ~ok.any(axis=1)  # slot 0 (DRAM temporal) is valid whenever the layer fits at all
            choice = _random_true(ok, rng)
            g.slots[ar, i] = cand[choice]
        return g


def _random_true(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per row, a uniformly chosen column index among the True entries."""
    r = rng.random(mask.shape) * mask
    return np.argmax(r, axis=1)
