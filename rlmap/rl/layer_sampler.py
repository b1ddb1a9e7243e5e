"""Where the mapping environment's layers come from: zoo networks, explicit layers, synthetic shapes.

A `LayerSampler` holds a fixed pool of layers (every layer of the named networks plus any extra layers)
and, optionally, a pool of *synthetic* layers with irregular shapes (odd and prime sizes, rectangular
filters, strides, dilation, grouped and depthwise convolutions, GEMMs, batched matmuls).  Each episode
draws one layer with the environment's generator, so `env.reset(seed=...)` makes the draw reproducible;
the synthetic pool itself is generated once from the sampler's own `seed`.

Random densities (for sparse training) replace a drawn layer's input and weight densities with values
on a 1/20 grid (the grid keeps the per-layer reference cache of the environment finite).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from rlmap.spec.factors import prime_factors
from rlmap.spec.io import list_networks, load_network
from rlmap.spec.layer import Densities, Layer, Network, layer_key

SYNTHETIC_KINDS: tuple[str, ...] = ("conv", "depthwise", "pointwise", "gemm", "matmul")
"""Kinds of synthetic layer, drawn with the weights in `SYNTHETIC_KIND_WEIGHTS`."""
SYNTHETIC_KIND_WEIGHTS: tuple[float, ...] = (0.35, 0.2, 0.2, 0.15, 0.1)
DENSITY_GRID = 20
"""Random densities are multiples of 1 / DENSITY_GRID."""


def _is_prime(n: int) -> bool:
    return n >= 2 and prime_factors(n) == [(n, 1)]


def _odd_size(rng: np.random.Generator, lo: int, hi: int) -> int:
    """A size drawn log-uniformly in [lo, hi], then made irregular half of the time.

    Irregular means: the nearest prime (25%), an odd number (15%), or a multiple of 3, 5 or 7 (10%);
    otherwise it is rounded to a power of two (30%) or kept as drawn (20%).
    """
    x = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
    x = min(max(x, lo), hi)
    u = rng.random()
    if u < 0.25:
        p = x
        while not _is_prime(p) and p < 2 * hi:
            p += 1
        x = p if p <= hi else x
    elif u < 0.40:
        x |= 1
    elif u < 0.50:
        m = int(rng.choice([3, 5, 7]))
        x = max(m, (x // m) * m)
    elif u < 0.80:
        x = 1 << max(0, int(round(math.log2(x))))
    return int(min(max(x, lo), hi))


def synthetic_layer(rng: np.random.Generator, name: str = "synthetic") -> Layer:
    """One random, valid layer of a random kind (see SYNTHETIC_KINDS)."""
    kind = str(rng.choice(SYNTHETIC_KINDS, p=SYNTHETIC_KIND_WEIGHTS))
    n = int(rng.choice([1, 2, 3, 4, 8])) if rng.random() < 0.15 else 1
    if kind in ("conv", "depthwise"):
        if rng.random() < 0.15:
            r, s = [(1, 7), (7, 1), (1, 3), (3, 1), (5, 3)][int(rng.integers(5))]
        else:
            r = s = int(rng.choice([1, 3, 3, 3, 5, 7] if kind == "conv" else [3, 3, 5, 7]))
        stride = int(rng.choice([1, 1, 1, 2])) if max(r, s) > 1 or rng.random() < 0.2 else 1
        dil = 2 if (max(r, s) > 1 and rng.random() < 0.1) else 1
        p = _odd_size(rng, 1, 112)
        q = p if rng.random() < 0.8 else _odd_size(rng, 1, 112)
        pad = ((r - 1) * dil // 2, (s - 1) * dil // 2)
        if kind == "conv":
            c = _odd_size(rng, 3, 1024)
            k = _odd_size(rng, 4, 1024)
            groups = 1
            if rng.random() < 0.15:  # grouped conv: a common divisor of K and C
                g = int(rng.choice([2, 3, 4, 8, 32]))
                c, k, groups = max(1, c // g) * g, max(1, k // g) * g, g
            return Layer(
                name=name,
                kind="conv",
                N=n,
                K=k,
                C=c,
                P=p,
                Q=q,
                R=r,
                S=s,
                groups=groups,
                stride=stride,
                dilation=dil,
                padding=pad,
            )
        c = _odd_size(rng, 8, 1024)
        mult = 2 if rng.random() < 0.1 else 1
        return Layer(
            name=name,
            kind="depthwise",
            N=n,
            K=c * mult,
            C=c,
            P=p,
            Q=q,
            R=r,
            S=s,
            groups=c,
            stride=stride,
            dilation=dil,
            padding=pad,
        )
    if kind == "pointwise":
        p = _odd_size(rng, 1, 112)
        return Layer(
            name=name,
            kind="pointwise",
            N=n,
            K=_odd_size(rng, 8, 2048),
            C=_odd_size(rng, 8, 2048),
            P=p,
            Q=p if rng.random() < 0.8 else _odd_size(rng, 1, 112),
        )
    if kind == "gemm":
        return Layer(
            name=name, kind="gemm", N=1, K=_odd_size(rng, 8, 4096), C=_odd_size(rng, 8, 4096), P=_odd_size(rng, 1, 4096)
        )
    groups = _odd_size(rng, 2, 48)
    return Layer(
        name=name,
        kind="matmul",
        N=1,
        K=groups * _odd_size(rng, 8, 512),
        C=groups * _odd_size(rng, 8, 512),
        P=_odd_size(rng, 8, 512),
        groups=groups,
    )


def random_densities(rng: np.random.Generator, low: float = 0.1, grid: int = DENSITY_GRID) -> Densities:
    """Input and weight densities uniform on [low, 1], snapped to the 1/grid grid; outputs dense."""
    lo = max(1, math.ceil(low * grid - 1e-9))

    def draw() -> float:
        return int(rng.integers(lo, grid + 1)) / grid

    return Densities(inputs=draw(), weights=draw(), outputs=1.0)


class LayerSampler:
    """Draws one layer per episode.

    networks: zoo names or YAML paths whose layers (each once, repeats ignored) join the pool.
    layers: extra `Layer` objects for the pool.
    synthetic: probability that an episode uses a synthetic layer instead of a pool layer (1.0 if the
        pool is empty).
    synthetic_pool: number of synthetic layers generated once from `seed` (0 = a fresh synthetic layer
        every episode; slower, since its reference mapping cost is computed anew each time).
    random_density: probability that the drawn layer's input/weight densities are re-drawn uniformly
        on [density_low, 1], as multiples of 1/density_grid (only affects architectures with sparse
        features; a coarse grid means fewer distinct layers, hence fewer rewards references to compute).
    """

    def __init__(
        self,
        networks: Sequence[str | Network] = (),
        layers: Iterable[Layer] = (),
        synthetic: float = 0.0,
        synthetic_pool: int = 256,
        random_density: float = 0.0,
        density_low: float = 0.1,
        density_grid: int = DENSITY_GRID,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= synthetic <= 1.0:
            raise ValueError(f"synthetic must be a probability in [0, 1], got {synthetic}")
        if not 0.0 <= random_density <= 1.0:
            raise ValueError(f"random_density must be a probability in [0, 1], got {random_density}")
        if not 0.0 < density_low <= 1.0:
            raise ValueError(f"density_low must be in (0, 1], got {density_low}")
        if synthetic_pool < 0:
            raise ValueError(f"synthetic_pool must be >= 0, got {synthetic_pool}")
        self.network_names: list[str] = []
        pool: list[Layer] = []
        for net in networks:
            net_obj = net if isinstance(net, Network) else load_network(net)
            self.network_names.append(net_obj.name)
            pool += [lay.model_copy(update={"name": f"{net_obj.name}/{lay.name}"}) for lay in net_obj.layers]
        extra = list(layers)
        self.n_extra = len(extra)
        pool += extra
        self.layers: list[Layer] = pool
        self.synthetic = 1.0 if not pool else float(synthetic)
        if not pool and synthetic == 0.0 and (networks or layers):
            raise ValueError("the sampler has no layers")
        self.random_density = float(random_density)
        self.density_low = float(density_low)
        if density_grid < 1:
            raise ValueError(f"density_grid must be >= 1, got {density_grid}")
        self.density_grid = int(density_grid)
        self.seed = int(seed)
        self.synthetic_pool_size = int(synthetic_pool)
        self.synthetic_layers: list[Layer] = []
        if self.synthetic > 0.0 and synthetic_pool > 0:
            rng = np.random.default_rng([self.seed, 0x5EED])
            self.synthetic_layers = [synthetic_layer(rng, f"synthetic/{i}") for i in range(synthetic_pool)]
        self._fresh = 0

    @classmethod
    def zoo(cls, exclude: Sequence[str] = (), **kwargs: object) -> LayerSampler:
        """Every network of the zoo except `exclude`."""
        return cls(networks=[n for n in list_networks() if n not in exclude], **kwargs)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.layers) + len(self.synthetic_layers)

    def sample(self, rng: np.random.Generator) -> Layer:
        """One layer, drawn with `rng` (the environment's generator)."""
        if self.synthetic > 0.0 and (not self.layers or rng.random() < self.synthetic):
            if self.synthetic_layers:
                layer = self.synthetic_layers[int(rng.integers(len(self.synthetic_layers)))]
            else:
                self._fresh += 1
                layer = synthetic_layer(rng, f"synthetic/fresh{self._fresh}")
        else:
            layer = self.layers[int(rng.integers(len(self.layers)))]
        if self.random_density > 0.0 and rng.random() < self.random_density:
            layer = layer.model_copy(update={"density": random_densities(rng, self.density_low, self.density_grid)})
        return layer

    def find(self, name: str) -> Layer:
        """The pool layer called `name`: "net/layer" as pooled, or the bare layer name when every layer of that
        name has the same shape (resnet18/conv1 = resnet50/conv1); ValueError naming the candidates otherwise."""
        pool = self.all_layers()
        exact = [lay for lay in pool if lay.name == name]
        found = exact or [lay for lay in pool if lay.name.rpartition("/")[2] == name]
        if not found:
            near = [lay.name for lay in pool if name.lower() in lay.name.lower()][:8]
            hint = (
                f"; did you mean {', '.join(near)}?"
                if near
                else (
                    f" (the sampler's layers: {', '.join(lay.name for lay in pool[:8])}"
                    f"{', ...' if len(pool) > 8 else ''})"
                    if pool
                    else " (the sampler has no named layers)"
                )
            )
            raise ValueError(f"no layer named {name!r} in the environment's layers{hint}")
        if len({layer_key(lay) for lay in found}) > 1:
            raise ValueError(
                f"layer name {name!r} is ambiguous: {', '.join(lay.name for lay in found)} differ; "
                "pass one of those names"
            )
        return found[0]

    def all_layers(self) -> list[Layer]:
        """The pool and the synthetic pool (what `sample` can return, densities aside)."""
        return self.layers + self.synthetic_layers

    def describe(self) -> str:
        parts = []
        if self.network_names:
            parts.append(f"networks {', '.join(self.network_names)}")
        if self.n_extra:
            parts.append(f"{self.n_extra} extra layers")
        if self.synthetic > 0:
            pool = f"pool of {self.synthetic_pool_size}" if self.synthetic_layers else "fresh each episode"
            parts.append(f"synthetic p={self.synthetic:g} ({pool}, seed {self.seed})")
        if self.random_density > 0:
            parts.append(
                f"random densities p={self.random_density:g} on [{self.density_low:g}, 1] "
                f"in steps of 1/{self.density_grid}"
            )
        return "; ".join(parts) or "empty"
