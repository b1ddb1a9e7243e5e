"""A Gymnasium environment that builds one layer's mapping through a sequence of discrete decisions.

    import gymnasium as gym
    import rlmap.rl.env  # registers "rlmap/Mapping-v0"
    env = gym.make("rlmap/Mapping-v0", arch="eyeriss", networks=["resnet18"])

An episode maps one layer (drawn by a `LayerSampler`) onto one architecture:

1. *Factor steps*: the prime factors of every loop bound (largest first) are placed one at a time; the
   action is the slot that receives the factor, slot = 3 * level + {0 temporal, 1 spatial X, 2 spatial Y}
   (the slot numbering of rlmap.search.mapspace).  Unplaced factors count as DRAM-temporal (slot 0).
2. *Order steps*: one step per memory level whose loop order can change the cost (levels other than the
   innermost with at least two temporal loops > 1), choosing one of the `ORDER_MENU` stationarity classes.

The action space is Discrete(3 * max_levels + len(ORDER_MENU)) for every architecture (levels are
padded to `max_levels`), and `action_masks()` / `info["action_mask"]` allow only actions that keep the
mapping valid, so every masked episode ends in a valid mapping.  The reward is terminal:
-log(objective / reference objective of the layer).  docs/env.md documents every choice.
"""

from __future__ import annotations

import hashlib
import math
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlmap.model.costmodel import OBJECTIVES, Cost, CostModel, capacity_spec, footprint, format_factor, objective_value
from rlmap.rl.layer_sampler import LayerSampler
from rlmap.rl.registration import ENV_ID  # noqa: F401  (re-exported; rlmap.rl's __init__ registers it)
from rlmap.search.mapspace import MapSpace
from rlmap.spec.arch import Architecture
from rlmap.spec.factors import prime_factors
from rlmap.spec.io import load_architecture
from rlmap.spec.layer import Layer, Network, layer_key  # noqa: F401  (layer_key: re-exported)
from rlmap.spec.mapping import Mapping, MappingBatch
from rlmap.spec.problem import DIMS, N_DIMS, N_TENSORS, OUTPUTS, RELEVANCE_MATRIX, TENSORS, C, G, K, N, P, Q, R, S

MAX_LEVELS = 4
"""Default padding of the architecture to this many memory levels (every preset has 3 or 4)."""
MAX_FACTOR_STEPS = 32
"""Default cap on factor steps; layers with more prime-factor copies merge their smallest ones."""

# Loop orders, outermost first.  Each tensor is "stationary" over the loops of dims it does not depend
# on that sit inside its innermost relevant loop: weights over N,P,Q; outputs over C,R,S; inputs over K.
# A menu entry ranks the three tensors: the innermost group makes its tensor the most stationary, the
# middle group the next.  Within a group the sliding-window dim goes innermost (Q after P, S after R) so
# the inputs' innermost relevant loop is a window loop whenever possible (halo reuse).
_W_IRR, _O_IRR, _I_IRR = (N, P, Q), (C, R, S), (K,)
_GROUPS = {"weight": _W_IRR, "output": _O_IRR, "input": _I_IRR}
ORDER_MENU: tuple[tuple[str, tuple[int, ...]], ...] = tuple(
    (f"{inner}-stationary, then {middle}", (G,) + _GROUPS[outer] + _GROUPS[middle] + _GROUPS[inner])
    for inner, middle, outer in (
        ("weight", "output", "input"),
        ("weight", "input", "output"),
        ("output", "weight", "input"),
        ("output", "input", "weight"),
        ("input", "weight", "output"),
        ("input", "output", "weight"),
    )
)
"""(name, permutation of dim indices outermost first) for each order action."""
assert all(sorted(o) == list(range(N_DIMS)) for _, o in ORDER_MENU)

REFERENCES: tuple[str, ...] = ("random", "median", "bound", "none")
_TOL = 1e-9  # the cost model's capacity tolerance
_LOG2 = math.log(2.0)


def _log2(x: float) -> float:
    return math.log(x) / _LOG2 if x > 0 else 0.0


def _stable_hash(obj: Any) -> int:
    return zlib.crc32(repr(obj).encode())


# ============================================================================ per-architecture data
class ArchInfo:
    """What the environment precomputes once per architecture (and its static observation block)."""

    def __init__(self, arch: Architecture, max_levels: int) -> None:
        L = arch.n_levels
        if L > max_levels:
            raise ValueError(f"architecture {arch.name!r} has {L} levels; raise max_levels (now {max_levels})")
        self.arch = arch
        self.L = L
        self.key = f"{arch.name}:{hashlib.sha1(arch.model_dump_json().encode()).hexdigest()[:12]}"
        lv = arch.levels
        self.fan_x = [lvl.fanout.x for lvl in lv]
        self.fan_y = [lvl.fanout.y for lvl in lv]
        self.allow_x = [
            [lvl.fanout.x > 1 and ((not lvl.fanout.x_dims) or DIMS[d] in lvl.fanout.x_dims) for d in range(N_DIMS)]
            for lvl in lv
        ]
        self.allow_y = [
            [lvl.fanout.y > 1 and ((not lvl.fanout.y_dims) or DIMS[d] in lvl.fanout.y_dims) for d in range(N_DIMS)]
            for lvl in lv
        ]
        self.keeps = [[TENSORS[v] in lvl.keeps for v in range(N_TENSORS)] for lvl in lv]
        self.kept = [[v for v in range(N_TENSORS) if self.keeps[j][v]] for j in range(L)]
        self.capacity = [capacity_spec(lvl) for lvl in lv]
        self.word_scale = [arch.data_bits / lvl.word_bits for lvl in lv]
        self.formats = [[lvl.formats.get(TENSORS[v], "uncompressed") for v in range(N_TENSORS)] for lvl in lv]
        self.uses_density = _uses_density(arch)
        self.static = self._static_features(max_levels)

    def _static_features(self, max_levels: int) -> np.ndarray:
        arch = self.arch
        e_max = max(
            [lvl.read_energy for lvl in arch.levels]
            + [lvl.write_energy for lvl in arch.levels]
            + [arch.compute.mac_energy, 1e-12]
        )
        comp = arch.compute
        out = [
            self.L / max_levels,
            _log2(arch.num_pes) / 16,
            comp.mac_energy / e_max,
            float(comp.sparse == "gate"),
            float(comp.sparse == "skip"),
            float("inputs" in comp.on and comp.sparse != "none"),
            float("weights" in comp.on and comp.sparse != "none"),
            arch.data_bits / 32,
        ]
        for j in range(max_levels):
            if j >= self.L:
                out += [0.0] * ARCH_LEVEL_FEATURES
                continue
            lvl = arch.levels[j]
            cap = self.capacity[j]
            caps = [0.0] * N_TENSORS
            for v in self.kept[j]:
                if cap is not None:
                    size = cap[1] if cap[0] == "shared" else cap[1][v]
                    caps[v] = _log2(size / self.word_scale[j]) / 24
            bw = lvl.bandwidth
            row = [
                1.0,
                *map(float, self.keeps[j]),
                *caps,
                float(cap is None),
                float(cap is not None and cap[0] == "shared"),
                lvl.read_energy / e_max,
                lvl.write_energy / e_max,
                _log2(1 + lvl.read_energy / max(comp.mac_energy, 1e-12)) / 16,
                _log2(self.fan_x[j]) / 8,
                _log2(self.fan_y[j]) / 8,
                *map(float, self.allow_x[j]),
                *map(float, self.allow_y[j]),
                0.0 if bw is None else _log2(1 + bw) / 12,
                float(bw is None),
                _log2(arch.instances(j)) / 16,
                *[float(f != "uncompressed") for f in self.formats[j]],
            ]
            assert len(row) == ARCH_LEVEL_FEATURES
            out += row
        return np.asarray(out, dtype=np.float32)


ARCH_GLOBAL_FEATURES = 8
ARCH_LEVEL_FEATURES = 1 + 3 + 3 + 2 + 3 + 2 + 2 * N_DIMS + 2 + 1 + 3
LAYER_FEATURES = N_DIMS + 4 + 3 + 1 + 3 + 3


def observation_layout(max_levels: int = MAX_LEVELS) -> dict[str, tuple[int, int]]:
    """Segments of the observation vector, name -> (start, end), for architectures padded to max_levels."""
    n_actions = 3 * max_levels + len(ORDER_MENU)
    sizes = [
        ("layer", LAYER_FEATURES),
        ("arch", ARCH_GLOBAL_FEATURES + max_levels * ARCH_LEVEL_FEATURES),
        ("objective", len(OBJECTIVES)),
        ("mapping", 3 * max_levels * N_DIMS),
        ("remaining", N_DIMS),
        ("occupancy", max_levels * N_TENSORS),
        ("fanout_used", 2 * max_levels),
        ("factor", 1 + N_DIMS),
        ("phase", 1 + max_levels),
        ("progress", 3),
        ("mask", n_actions),
    ]
    layout: dict[str, tuple[int, int]] = {}
    off = 0
    for name, n in sizes:
        layout[name] = (off, off + n)
        off += n
    return layout


def _layer_features(layer: Layer, use_density: bool = True) -> list[float]:
    """The layer block of the observation.  Densities read 1.0 on an architecture that cannot use them
    (no cost depends on them there), so the observation is a function of what the cost model sees."""
    dims = layer.problem_dims
    sizes = layer.tensor_sizes
    return (
        [_log2(x) / 16 for x in dims]
        + [_log2(x) / 3 for x in (*layer.stride, *layer.dilation)]
        + (list(layer.density.as_tuple()) if use_density else [1.0] * N_TENSORS)
        + [_log2(layer.macs) / 40]
        + [_log2(sizes[t]) / 32 for t in TENSORS]
        + [float(dims[G] > 1), float(dims[R] * dims[S] == 1), float(dims[P] * dims[Q] == 1)]
    )


def factor_tokens(dims: Sequence[int], max_steps: int) -> list[tuple[int, int]]:
    """(dim, factor) per factor step, largest factor first (ties: canonical dim order).

    One token per prime-factor copy; while there are more than `max_steps`, the two smallest tokens of
    the dimension with the most tokens are merged (e.g. 2 * 2 -> 4).
    """
    per_dim: list[list[int]] = [[] for _ in dims]
    for d, n in enumerate(dims):
        for p, a in prime_factors(n):
            per_dim[d] += [p] * a
    total = sum(len(x) for x in per_dim)
    while total > max_steps:
        d = max(range(len(dims)), key=lambda i: (len(per_dim[i]), -i))
        fs = sorted(per_dim[d])
        per_dim[d] = sorted([fs[0] * fs[1]] + fs[2:])
        total -= 1
    tokens = [(d, f) for d in range(len(dims)) for f in per_dim[d]]
    tokens.sort(key=lambda t: (-t[1], t[0]))
    return tokens


# ============================================================================ per-(layer, arch) data
class _LayerData:
    """Everything about one layer on one architecture that does not change during an episode."""

    __slots__ = ("layer", "dims", "tokens", "static", "model", "scale", "dyn_fmt", "refs", "key")

    def __init__(self, layer: Layer, ai: ArchInfo, max_steps: int) -> None:
        self.layer = layer
        self.dims = layer.problem_dims
        self.tokens = factor_tokens(self.dims, max_steps)
        self.static = np.asarray(_layer_features(layer, ai.uses_density), dtype=np.float32)
        self.model: CostModel | None = None
        dens = layer.density.as_tuple()
        bits = ai.arch.data_bits
        # words per footprint element at each (level, tensor); None = coordinate format (tile-dependent)
        self.scale: list[list[float | None]] = []
        for j in range(ai.L):
            row: list[float | None] = []
            for v in range(N_TENSORS):
                fmt = ai.formats[j][v]
                if fmt == "coordinate" and dens[v] < 1.0:
                    row.append(None)
                else:
                    row.append(float(format_factor(fmt, dens[v], 1, bits)))
            self.scale.append(row)
        self.dyn_fmt = [(ai.formats[j][v], dens[v], bits) for j in range(ai.L) for v in range(N_TENSORS)]
        self.refs: dict[tuple[str, int, int], dict[str, float]] = {}  # (reference mode, samples, seed) -> costs
        self.key = (ai.key, layer_key(layer, ai.uses_density))

    def cost_model(self, ai: ArchInfo) -> CostModel:
        if self.model is None:
            self.model = CostModel(self.layer, ai.arch)
        return self.model


_LAYER_CACHE: OrderedDict[tuple[Any, ...], _LayerData] = OrderedDict()
_LAYER_CACHE_SIZE = 4096
_REF_CACHE: dict[tuple[Any, ...], dict[str, float]] = {}


def reference_costs(
    layer: Layer, arch: Architecture, samples: int = 16, seed: int = 0, model: CostModel | None = None
) -> dict[str, float]:
    """Per-objective best and median of `samples` uniformly random valid mappings (MapSpace.sample).

    The generator is seeded from `seed` and the layer's shape, so a layer always gets the same reference.
    Cached per process.
    """
    uses_density = _uses_density(arch)
    key = (
        arch.name,
        hashlib.sha1(arch.model_dump_json().encode()).hexdigest()[:12],
        layer_key(layer, uses_density),
        samples,
        seed,
    )
    hit = _REF_CACHE.get(key)
    if hit is not None:
        return hit
    model = model or CostModel(layer, arch)
    space = MapSpace(layer, arch, model)
    rng = np.random.default_rng([seed, _stable_hash(layer_key(layer, uses_density))])
    genome, _rate = space.sample(samples, rng)
    cost = model.evaluate_batch(space.decode(genome))
    out: dict[str, float] = {}
    for obj in OBJECTIVES:
        vals = np.asarray(cost.objective(obj), dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out[f"best_{obj}"] = float(vals.min()) if len(vals) else math.inf
        out[f"median_{obj}"] = float(np.median(vals)) if len(vals) else math.inf
    _REF_CACHE[key] = out
    return out


def _uses_density(arch: Architecture) -> bool:
    """Whether densities change any cost on `arch` (sparse compute or a compressed format)."""
    return arch.compute.sparse != "none" or any(
        f != "uncompressed" for lvl in arch.levels for f in lvl.formats.values()
    )


def bound_costs(layer: Layer, arch: Architecture) -> dict[str, float]:
    """A cheap analytical estimate of the best costs: compulsory DRAM traffic plus the MACs (energy) and
    a full PE array or the DRAM bandwidth (cycles), whichever is slower."""
    model = CostModel(layer, arch)
    sizes = layer.tensor_sizes
    dram = arch.levels[0]
    words = 0.0
    energy = layer.macs * model.phi * arch.compute.mac_energy
    for v, t in enumerate(TENSORS):
        fc = model.fmt_const[0][v]
        f = fc if fc is not None else 1.0
        w = sizes[t] * f * model.word_scale[0]
        words += w
        energy += w * (dram.write_energy if v == OUTPUTS else dram.read_energy)
    cycles = math.ceil(layer.macs / arch.num_pes) * (model.phi if model.skip else 1.0)
    if dram.bandwidth is not None:
        cycles = max(cycles, words / dram.bandwidth)
    return {f"best_{o}": float(objective_value(energy, cycles, o)) for o in OBJECTIVES} | {
        f"median_{o}": float(objective_value(energy, cycles, o)) for o in OBJECTIVES
    }


# ============================================================================ the environment
class MappingEnv(gym.Env):
    """Map one layer per episode; see the module docstring and docs/env.md.

    arch: preset name, YAML path or Architecture, or a list of them (one is drawn per episode).
    objective: "energy", "latency" or "edp" (what the reward scores).
    sampler: a LayerSampler; or give networks / layers / synthetic / random_density to build one.
    reference: "random" (best of `reference_samples` uniformly random valid mappings, the default),
        "median" (their median), "bound" (analytical estimate, no sampling) or "none" (reference 1).
    invalid_action_penalty: subtracted from the reward of a step whose action was masked out (the action is
        then replaced by the always-valid fallback: DRAM temporal, or the first order of the menu).
    reward_model: optional stand-in for the cost model at episode end (for slow cost models), any object
        with `predict(layer, arch, MappingBatch) -> (energy, cycles)` such as
        `rlmap.surrogate_model.SurrogateRewardModel`; the reward then scores its prediction (masks still
        guarantee validity) and `info["reward_source"]` says "surrogate".
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        arch: str | Architecture | Sequence[str | Architecture] = "eyeriss",
        objective: str = "edp",
        sampler: LayerSampler | None = None,
        networks: Sequence[str | Network] | None = None,
        layers: Sequence[Layer] | None = None,
        synthetic: float = 0.0,
        random_density: float = 0.0,
        sampler_seed: int = 0,
        synthetic_pool: int = 256,
        density_low: float = 0.1,
        density_grid: int = 20,
        max_levels: int = MAX_LEVELS,
        max_factor_steps: int = MAX_FACTOR_STEPS,
        reference: str = "random",
        reference_samples: int = 16,
        reference_seed: int = 0,
        invalid_action_penalty: float = 0.0,
        render_mode: str | None = None,
        reward_model: Any = None,
    ) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})")
        if reference not in REFERENCES:
            raise ValueError(f"unknown reference {reference!r} (expected one of {', '.join(REFERENCES)})")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unsupported render_mode {render_mode!r}")
        if max_factor_steps < N_DIMS:
            raise ValueError(f"max_factor_steps must be >= {N_DIMS}")
        archs = [arch] if isinstance(arch, (str, Architecture)) else list(arch)
        if not archs:
            raise ValueError("no architecture given")
        self.archs = [ArchInfo(a if isinstance(a, Architecture) else load_architecture(a), max_levels) for a in archs]
        if sampler is None:
            if networks is None and layers is None and synthetic == 0.0:
                networks = ["resnet18", "vgg16", "resnet50"]
            sampler = LayerSampler(
                networks=networks or (),
                layers=layers or (),
                synthetic=synthetic,
                synthetic_pool=synthetic_pool,
                random_density=random_density,
                density_low=density_low,
                density_grid=density_grid,
                seed=sampler_seed,
            )
        self.sampler = sampler
        self.objective = objective
        self.reference = reference
        self.reference_samples = reference_samples
        self.reference_seed = reference_seed
        self.invalid_action_penalty = float(invalid_action_penalty)
        self.reward_model = reward_model
        self.render_mode = render_mode
        self.max_levels = max_levels
        self.max_factor_steps = max_factor_steps
        self.n_slots = 3 * max_levels
        self.n_orders = len(ORDER_MENU)
        self.n_actions = self.n_slots + self.n_orders
        self.action_space = spaces.Discrete(self.n_actions)
        self.obs_layout = observation_layout(max_levels)
        off = self.obs_size = self.obs_layout["mask"][1]
        self.observation_space = spaces.Box(-8.0, 8.0, shape=(off,), dtype=np.float32)
        self._obj_onehot = np.array([float(o == objective) for o in OBJECTIVES], dtype=np.float32)
        self._o = {name: a for name, (a, _b) in self.obs_layout.items()}
        self._obs = np.zeros(off, dtype=np.float32)
        self._mask = [False] * self.n_actions
        self._mask[0] = True
        self._done = True
        self._ld: _LayerData | None = None
        self._ai = self.archs[0]
        self.last_cost: Cost | None = None

    # ------------------------------------------------------------------ episode setup
    def _layer_data(self, layer: Layer, ai: ArchInfo) -> _LayerData:
        key = (ai.key, layer_key(layer, ai.uses_density), self.max_factor_steps)
        ld = _LAYER_CACHE.get(key)
        if ld is None:
            ld = _LayerData(layer, ai, self.max_factor_steps)
            _LAYER_CACHE[key] = ld
            if len(_LAYER_CACHE) > _LAYER_CACHE_SIZE:
                _LAYER_CACHE.popitem(last=False)
        else:
            _LAYER_CACHE.move_to_end(key)
        return ld

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode. options: {"layer": Layer or a layer name of the sampler, e.g. "conv1" or
        "resnet18/conv1"} and/or {"arch": index or name} pin the draw.  A layer is never an index: the
        sampler's pool mixes networks and synthetic layers, so a number would name nothing stable (TypeError)."""
        super().reset(seed=seed)
        options = options or {}
        if not isinstance(options, dict):
            raise TypeError(f"options must be a dict, e.g. {{'layer': 'conv1'}}, got {type(options).__name__}")
        rng = self.np_random
        if "arch" in options:
            want = options["arch"]
            if isinstance(want, int) and not isinstance(want, bool):
                if not 0 <= want < len(self.archs):
                    raise ValueError(
                        f"options['arch'] = {want} is not an index of the environment's {len(self.archs)} "
                        f"architecture(s) ({[a.arch.name for a in self.archs]})"
                    )
                ai = self.archs[want]
            else:
                matches = [a for a in self.archs if a.arch.name == want]
                if not matches:
                    raise ValueError(f"arch {want!r} is not one of {[a.arch.name for a in self.archs]}")
                ai = matches[0]
        else:
            ai = self.archs[int(rng.integers(len(self.archs)))] if len(self.archs) > 1 else self.archs[0]
        layer: Layer | str | None = options.get("layer")
        if isinstance(layer, str):
            layer = self.sampler.find(layer)
        elif layer is not None and not isinstance(layer, Layer):
            raise TypeError(
                f"options['layer'] must be a Layer or a layer name (str) of the environment's networks, "
                f"got {type(layer).__name__} {layer!r}"
            )
        if layer is None:
            layer = self.sampler.sample(rng)
        self._ai = ai
        self._layer = layer
        ld = self._ld = self._layer_data(layer, ai)
        L = ai.L
        self._L = L
        self._sh, self._sw = layer.stride
        self._dh, self._dw = layer.dilation
        self._fac = [[[1] * N_DIMS for _ in range(L)] for _ in range(3)]  # [kind][level][dim]
        self._spx = [1] * L
        self._spy = [1] * L
        self._E = [[1] * N_DIMS for _ in range(L)]  # E[j]: tile extents at level j (j >= 1 meaningful)
        self._words = [[0.0] * N_TENSORS for _ in range(L)]
        for j in range(1, L):
            for v in ai.kept[j]:
                self._words[j][v] = self._tile_words(j, v, self._E[j])
        self._rem = list(ld.dims)
        self._i = 0
        self._phase = 0
        self._order_levels: list[int] = []
        self._j = 0
        self._orders = [ORDER_MENU[0][1]] * L
        self._invalid = 0
        self._done = False
        # observation
        obs = self._obs
        obs[:] = 0.0
        o = self._o
        obs[o["layer"] : o["layer"] + LAYER_FEATURES] = ld.static
        a0 = o["arch"]
        obs[a0 : a0 + len(ai.static)] = ai.static
        obs[o["objective"] : o["objective"] + len(OBJECTIVES)] = self._obj_onehot
        for d in range(N_DIMS):
            obs[o["remaining"] + d] = _log2(ld.dims[d]) / 16
        obs[o["progress"] + 2] = len(ld.tokens) / self.max_factor_steps
        np.clip(obs, -8.0, 8.0, out=obs)
        if ld.tokens:
            self._factor_mask()
        else:  # a 1x1x...x1 layer: straight to the order phase
            self._start_orders()
        return self._observation(), {"action_mask": self.action_masks()}

    # ------------------------------------------------------------------ incremental validity
    def _tile_words(self, j: int, v: int, e: list[int]) -> float:
        """Words of tensor v's tile at level j for extents e, as the cost model counts them."""
        tile = footprint(v, e, self._sh, self._sw, self._dh, self._dw)
        f = self._ld.scale[j][v]  # type: ignore[union-attr]
        if f is None:
            fmt, dens, bits = self._ld.dyn_fmt[j * N_TENSORS + v]  # type: ignore[union-attr]
            f = float(format_factor(fmt, dens, tile, bits))
        return tile * self._ai.word_scale[j] * f

    def _fits(self, j: int, d: int, f: int) -> bool:
        """Does level j still fit if dim d's extent there grows by f?"""
        cap = self._ai.capacity[j]
        if cap is None:
            return True
        e = self._E[j]
        old = e[d]
        e[d] = old * f
        words = self._words[j]
        kind, size = cap
        try:
            if kind == "shared":
                new = [0.0] * N_TENSORS
                for v in self._ai.kept[j]:
                    new[v] = self._tile_words(j, v, e) if RELEVANCE_MATRIX[v][d] else words[v]
                return sum(new) <= size + _TOL
            for v in self._ai.kept[j]:
                if RELEVANCE_MATRIX[v][d] and self._tile_words(j, v, e) > size[v] + _TOL:
                    return False
            return True
        finally:
            e[d] = old

    def _factor_mask(self) -> None:
        d, f = self._ld.tokens[self._i]  # type: ignore[union-attr]
        ai = self._ai
        m = [False] * self.n_actions
        m[0] = True
        spx, spy = self._spx, self._spy
        for lvl in range(self._L):
            if lvl > 0:
                if not self._fits(lvl, d, f):
                    break
                m[3 * lvl] = True
            if ai.allow_x[lvl][d] and spx[lvl] * f <= ai.fan_x[lvl]:
                m[3 * lvl + 1] = True
            if ai.allow_y[lvl][d] and spy[lvl] * f <= ai.fan_y[lvl]:
                m[3 * lvl + 2] = True
        self._mask = m
        obs, o = self._obs, self._o
        fo = o["factor"]
        obs[fo : fo + 1 + N_DIMS] = 0.0
        obs[fo] = _log2(f) / 8
        obs[fo + 1 + d] = 1.0
        ph = o["phase"]
        obs[ph : ph + 1 + self.max_levels] = 0.0
        obs[ph] = 1.0
        pr = o["progress"]
        n = len(self._ld.tokens)  # type: ignore[union-attr]
        obs[pr] = self._i / max(n, 1)
        obs[pr + 1] = (n - self._i) / self.max_factor_steps

    def _place(self, d: int, f: int, slot: int) -> None:
        lvl, kind = divmod(slot, 3)
        self._fac[kind][lvl][d] *= f
        ai = self._ai
        obs, o = self._obs, self._o
        if kind == 1:
            self._spx[lvl] *= f
            if ai.fan_x[lvl] > 1:
                obs[o["fanout_used"] + 2 * lvl] = _log2(self._spx[lvl]) / _log2(ai.fan_x[lvl])
        elif kind == 2:
            self._spy[lvl] *= f
            if ai.fan_y[lvl] > 1:
                obs[o["fanout_used"] + 2 * lvl + 1] = _log2(self._spy[lvl]) / _log2(ai.fan_y[lvl])
        lf = _log2(f)
        obs[o["mapping"] + slot * N_DIMS + d] += lf / 8
        self._rem[d] //= f
        obs[o["remaining"] + d] = _log2(self._rem[d]) / 16
        occ = o["occupancy"]
        for j in range(1, lvl + 1):
            e = self._E[j]
            e[d] *= f
            words = self._words[j]
            for v in ai.kept[j]:
                if RELEVANCE_MATRIX[v][d]:
                    words[v] = self._tile_words(j, v, e)
            cap = ai.capacity[j]
            if cap is not None:
                if cap[0] == "shared":
                    for v in ai.kept[j]:
                        obs[occ + N_TENSORS * j + v] = words[v] / cap[1]
                else:
                    for v in ai.kept[j]:
                        obs[occ + N_TENSORS * j + v] = words[v] / cap[1][v]

    def _start_orders(self) -> None:
        self._phase = 1
        temporal = self._fac[0]
        self._order_levels = [lvl for lvl in range(self._L - 1) if sum(1 for x in temporal[lvl] if x > 1) >= 2]
        self._j = 0
        obs, o = self._obs, self._o
        fo = o["factor"]
        obs[fo : fo + 1 + N_DIMS] = 0.0
        pr = o["progress"]
        obs[pr] = 1.0
        obs[pr + 1] = 0.0
        if self._order_levels:
            self._order_mask()

    def _order_mask(self) -> None:
        m = [False] * self.n_actions
        for a in range(self.n_slots, self.n_actions):
            m[a] = True
        self._mask = m
        obs, o = self._obs, self._o
        ph = o["phase"]
        obs[ph : ph + 1 + self.max_levels] = 0.0
        obs[ph + 1 + self._order_levels[self._j]] = 1.0

    # ------------------------------------------------------------------ gym API
    def action_masks(self) -> np.ndarray:
        """Boolean mask over the actions (sb3-contrib's MaskablePPO convention)."""
        return np.array(self._mask, dtype=bool)

    def _observation(self) -> np.ndarray:
        obs = self._obs
        mo = self._o["mask"]
        obs[mo : mo + self.n_actions] = self._mask
        return obs.copy()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("step() called on a finished episode; call reset()")
        a = int(action)
        reward = 0.0
        invalid = not (0 <= a < self.n_actions and self._mask[a])
        if invalid:
            self._invalid += 1
            reward -= self.invalid_action_penalty
            a = 0 if self._phase == 0 else self.n_slots
        if self._phase == 0:
            d, f = self._ld.tokens[self._i]  # type: ignore[union-attr]
            self._place(d, f, a)
            self._i += 1
            if self._i < len(self._ld.tokens):  # type: ignore[union-attr]
                self._factor_mask()
            else:
                self._start_orders()
        else:
            self._orders[self._order_levels[self._j]] = ORDER_MENU[a - self.n_slots][1]
            self._j += 1
            if self._j < len(self._order_levels):
                self._order_mask()
        info: dict[str, Any]
        if self._phase == 1 and self._j >= len(self._order_levels):
            r, info = self._finish()
            reward += r
            self._done = True
            self._mask = [False] * self.n_actions
            self._mask[0] = True  # keep one action available: masks of a finished episode are never empty
        else:
            info = {}
        if invalid:
            info["invalid_action"] = True
        info["action_mask"] = self.action_masks()
        return self._observation(), float(reward), self._done, False, info

    # ------------------------------------------------------------------ end of episode
    def mapping(self) -> Mapping:
        """The (partial) mapping so far; unplaced factors at DRAM temporal."""
        L = self._L
        temporal = [list(row) for row in self._fac[0]]
        for d in range(N_DIMS):
            temporal[0][d] *= self._rem[d]
        return Mapping(
            temporal=tuple(tuple(r) for r in temporal),
            spatial_x=tuple(tuple(r) for r in self._fac[1]),
            spatial_y=tuple(tuple(r) for r in self._fac[2]),
            order=tuple(self._orders[lvl] for lvl in range(L)),
        )

    def reference_costs(self) -> dict[str, float]:
        """The current layer's reference (see `reference`), cached per process."""
        ld, ai = self._ld, self._ai
        assert ld is not None
        mode = "random" if self.reference == "median" else self.reference  # one sample set serves both
        key = (mode, self.reference_samples, self.reference_seed)
        ref = ld.refs.get(key)
        if ref is None:
            if mode == "random":
                ref = reference_costs(ld.layer, ai.arch, self.reference_samples, self.reference_seed, ld.cost_model(ai))
            elif mode == "bound":
                ref = bound_costs(ld.layer, ai.arch)
            else:
                ref = {f"{k}_{o}": 1.0 for k in ("best", "median") for o in OBJECTIVES}
            ld.refs[key] = ref
        return ref

    def _finish(self) -> tuple[float, dict[str, Any]]:
        ld, ai = self._ld, self._ai
        assert ld is not None
        m = self.mapping()
        if self.reward_model is not None:
            return self._finish_with_model(m)
        cost = ld.cost_model(ai).evaluate(m)
        self.last_cost = cost
        info: dict[str, Any] = {
            "layer": self._layer.name,
            "arch": ai.arch.name,
            "valid": cost.valid,
            "mapping": m,
            "invalid_actions": self._invalid,
        }
        if not cost.valid:  # only reachable when the layer cannot fit at all (or after forced fallbacks)
            info.update(
                energy=math.inf, cycles=math.inf, edp=math.inf, edp_ratio=math.inf, ratio=math.inf, reason=cost.reason
            )
            return -10.0, info
        ref = self.reference_costs()
        kind = "median" if self.reference == "median" else "best"
        value = cost.objective(self.objective)
        ratio = value / ref[f"{kind}_{self.objective}"]
        edp_ratio = cost.edp / ref[f"{kind}_edp"]
        info.update(
            energy=cost.energy,
            cycles=cost.cycles,
            edp=cost.edp,
            objective=value,
            ratio=ratio,
            edp_ratio=edp_ratio,
            utilization=cost.utilization,
            reference=ref[f"{kind}_{self.objective}"],
        )
        return -math.log(ratio), info

    def _finish_with_model(self, m: Mapping) -> tuple[float, dict[str, Any]]:
        """Episode end scored by `reward_model` instead of the cost model."""
        ld, ai = self._ld, self._ai
        assert ld is not None
        energy, cycles = self.reward_model.predict(self._layer, ai.arch, MappingBatch.stack([m]))
        e, c = float(energy[0]), float(cycles[0])
        ref = self.reference_costs()
        kind = "median" if self.reference == "median" else "best"
        value = float(objective_value(e, c, self.objective))
        ratio = value / ref[f"{kind}_{self.objective}"]
        info: dict[str, Any] = {
            "layer": self._layer.name,
            "arch": ai.arch.name,
            "valid": True,
            "mapping": m,
            "invalid_actions": self._invalid,
            "reward_source": "surrogate",
            "energy": e,
            "cycles": c,
            "edp": e * c,
            "objective": value,
            "ratio": ratio,
            "edp_ratio": e * c / ref[f"{kind}_edp"],
            "reference": ref[f"{kind}_{self.objective}"],
        }
        return -math.log(ratio), info

    def render(self) -> str | np.ndarray | None:
        """ "ansi": the mapping so far as text; "rgb_array": as an image (rlmap.rl.render), captioned the same."""
        if self.render_mode not in self.metadata["render_modes"] or self._ld is None:
            return None
        lines = [f"layer {self._layer.name} {self._layer.shape_str()} on {self._ai.arch.name}"]
        m = self.mapping()
        for lvl, level in enumerate(self._ai.arch.levels):
            parts = []
            for label, mat in (("T", m.temporal), ("X", m.spatial_x), ("Y", m.spatial_y)):
                fs = " ".join(f"{DIMS[d]}{f}" for d, f in enumerate(mat[lvl]) if f > 1)
                if fs:
                    parts.append(f"{label}[{fs}]")
            order = "".join(DIMS[d] for d in m.order[lvl])
            lines.append(f"  {level.name:>16}: {' '.join(parts) or '-'}  order {order}")
        if self._phase == 0 and not self._done:
            d, f = self._ld.tokens[self._i]
            lines.append(f"  next: place factor {f} of {DIMS[d]}")
        elif self.last_cost is not None and self._done:
            c = self.last_cost
            lines.append(f"  energy {c.energy:.4g}  cycles {c.cycles:.4g}  edp {c.edp:.4g}")
        if self.render_mode == "rgb_array":
            from rlmap.rl.render import mapping_image

            return mapping_image(
                m,
                [level.name for level in self._ai.arch.levels],
                [lines[0]] + [ln.strip() for ln in lines[len(self._ai.arch.levels) + 1 :]],
            )
        return "\n".join(lines)


# ============================================================================ training helpers (lazy SB3)
def make_env(rank: int = 0, seed: int = 0, **env_kwargs: Any):
    """A thunk for SB3 vector envs: a Monitor-wrapped MappingEnv seeded with seed + rank."""

    def thunk() -> gym.Env:
        from stable_baselines3.common.monitor import Monitor

        env = Monitor(MappingEnv(**env_kwargs))
        env.reset(seed=seed + rank)  # VecEnv.seed() (set by the algorithm's seed) re-seeds on its first reset
        return env

    return thunk


_CALLBACK_CLASS: type | None = None


def _metrics_callback_class() -> type:
    """MappingMetricsCallback, built on first use so `import rlmap.rl.env` does not import torch."""
    global _CALLBACK_CLASS
    if _CALLBACK_CLASS is not None:
        return _CALLBACK_CLASS
    from stable_baselines3.common.callbacks import BaseCallback

    class MappingMetricsCallback(BaseCallback):
        """Logs, per rollout, the finished episodes' reward, EDP ratio to the reference and validity.

        Scalars (TensorBoard tags): rlmap/episode_reward, rlmap/edp_ratio (geometric mean),
        rlmap/objective_ratio (geometric mean), rlmap/valid (fraction), rlmap/invalid_actions (per episode),
        rlmap/episodes; a custom-scalars layout groups them in TensorBoard's "Custom Scalars" tab.
        """

        def __init__(self, verbose: int = 0) -> None:
            super().__init__(verbose)
            self._reset_stats()
            self.history: list[dict[str, float]] = []

        def _reset_stats(self) -> None:
            self._rewards: list[float] = []
            self._log_edp: list[float] = []
            self._log_ratio: list[float] = []
            self._valid: list[float] = []
            self._invalid: list[float] = []

        def _on_training_start(self) -> None:
            try:
                from stable_baselines3.common.logger import TensorBoardOutputFormat

                for fmt in self.logger.output_formats:
                    if isinstance(fmt, TensorBoardOutputFormat):
                        fmt.writer.add_custom_scalars(
                            {
                                "rlmap": {
                                    "episode reward": ["Multiline", ["rlmap/episode_reward", "rollout/ep_rew_mean"]],
                                    "EDP / reference (geo-mean)": [
                                        "Multiline",
                                        ["rlmap/edp_ratio", "rlmap/objective_ratio"],
                                    ],
                                    "validity": ["Multiline", ["rlmap/valid"]],
                                }
                            }
                        )
            except Exception:  # noqa: BLE001 - the layout is a convenience only
                pass

        def _on_step(self) -> bool:
            infos = self.locals.get("infos", ())
            dones = self.locals.get("dones", ())
            rewards = self.locals.get("rewards", ())
            for k, (done, info) in enumerate(zip(dones, infos)):
                if not done or "valid" not in info:
                    continue
                ep = info.get("episode")
                self._rewards.append(float(ep["r"]) if ep else float(rewards[k]))
                self._valid.append(float(info["valid"]))
                self._invalid.append(float(info.get("invalid_actions", 0)))
                if info["valid"]:
                    self._log_edp.append(math.log(info["edp_ratio"]))
                    self._log_ratio.append(math.log(info["ratio"]))
            return True

        def _on_rollout_end(self) -> None:
            if not self._valid:
                return
            stats = {
                "rlmap/episode_reward": float(np.mean(self._rewards)),
                "rlmap/valid": float(np.mean(self._valid)),
                "rlmap/invalid_actions": float(np.mean(self._invalid)),
                "rlmap/episodes": float(len(self._valid)),
            }
            if self._log_edp:
                stats["rlmap/edp_ratio"] = float(math.exp(np.mean(self._log_edp)))
                stats["rlmap/objective_ratio"] = float(math.exp(np.mean(self._log_ratio)))
            for k, v in stats.items():
                self.logger.record(k, v)
            stats["timesteps"] = float(self.num_timesteps)
            self.history.append(stats)
            self._reset_stats()

    _CALLBACK_CLASS = MappingMetricsCallback
    return MappingMetricsCallback


def __getattr__(name: str) -> Any:  # PEP 562: `from rlmap.rl.env import MappingMetricsCallback`
    if name == "MappingMetricsCallback":
        return _metrics_callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def train_maskable_ppo(
    env_kwargs: dict[str, Any],
    total_timesteps: int,
    log_dir: str | None = None,
    n_envs: int = 4,
    vec_env: str = "dummy",
    seed: int = 0,
    ppo_kwargs: dict[str, Any] | None = None,
    verbose: int = 0,
    tb_log_name: str = "MaskablePPO",
    torch_threads: int | None = 1,
    callbacks: Sequence[Any] = (),
) -> tuple[Any, Any]:
    """Train sb3-contrib's MaskablePPO on MappingEnv(**env_kwargs); returns (model, metrics callback).

    TensorBoard event files go to `log_dir` (None = no logging).  ppo_kwargs override the defaults below.
    torch_threads: the policy is small, so one thread is fastest and immune to OpenMP spin contention
    on a busy machine (None leaves torch's setting alone).
    """
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.callbacks import CallbackList
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    thunks = [make_env(i, seed * 1000, **env_kwargs) for i in range(n_envs)]
    venv = SubprocVecEnv(thunks) if vec_env == "subproc" else DummyVecEnv(thunks)
    kwargs: dict[str, Any] = dict(
        n_steps=128,
        batch_size=512,
        n_epochs=4,
        gamma=1.0,
        gae_lambda=0.95,
        learning_rate=3e-4,
        ent_coef=0.01,
        clip_range=0.2,
        policy_kwargs=dict(net_arch=[128, 128]),
    )
    kwargs.update(ppo_kwargs or {})
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    model = MaskablePPO("MlpPolicy", venv, seed=seed, verbose=verbose, tensorboard_log=log_dir, device="cpu", **kwargs)
    callback = _metrics_callback_class()()
    model.learn(total_timesteps=total_timesteps, callback=CallbackList([callback, *callbacks]), tb_log_name=tb_log_name)
    venv.close()
    return model, callback


def greedy_episode(
    env: MappingEnv, model: Any, layer: Layer, arch: str | int | None = None, deterministic: bool = True
) -> dict[str, Any]:
    """Run one masked episode of `model` on `layer`; returns the terminal info."""
    options: dict[str, Any] = {"layer": layer}
    if arch is not None:
        options["arch"] = arch
    obs, info = env.reset(options=options)
    while True:
        action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=deterministic)
        obs, _r, terminated, truncated, info = env.step(int(action))
        if terminated or truncated:
            return info
