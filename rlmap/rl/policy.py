"""Policy feature extractor that follows the structure of the mapping observation.

The environment's observation (docs/env.md, "Observation") is one flat vector, but most of it is a
per-memory-level table: for each padded level, the architecture's description of that level, the factors
placed at it (temporal, X, Y), the occupancy of its buffers and the use of its fanouts.  The same facts
mean the same thing at any level, so `LevelwiseExtractor` encodes each level's row with **one shared
network** (plus the level's position), and the rest (layer shape, global architecture features, the
factor being placed, progress, mask) with a second network; the two are concatenated.  Compared with a
plain MLP on the flat vector it has fewer parameters for the per-level part and learns "a full buffer
forbids going deeper" once instead of once per level.  Which one transfers better to unseen networks
is measured, not assumed: see docs/agents.md.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from rlmap.rl.env import ARCH_GLOBAL_FEATURES, ARCH_LEVEL_FEATURES, observation_layout
from rlmap.spec.problem import N_DIMS, N_TENSORS


class LevelwiseExtractor(BaseFeaturesExtractor):
    level_index: torch.Tensor  # buffers (register_buffer)
    global_index: torch.Tensor
    position: torch.Tensor
    """Shared per-level encoder + global encoder over the rlmap/Mapping-v0 observation."""

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        max_levels: int = 4,
        level_dim: int = 64,
        global_dim: int = 128,
        features_dim: int = 256,
    ) -> None:
        super().__init__(observation_space, features_dim)
        n_obs = int(observation_space.shape[0])
        lay = observation_layout(max_levels)
        if lay["mask"][1] != n_obs:
            raise ValueError(f"observation of size {n_obs} does not match max_levels={max_levels}")
        self.L = max_levels
        a0 = lay["arch"][0]
        level_index: list[list[int]] = []
        for j in range(max_levels):
            idx = list(
                range(
                    a0 + ARCH_GLOBAL_FEATURES + j * ARCH_LEVEL_FEATURES,
                    a0 + ARCH_GLOBAL_FEATURES + (j + 1) * ARCH_LEVEL_FEATURES,
                )
            )
            idx += list(range(lay["mapping"][0] + j * 3 * N_DIMS, lay["mapping"][0] + (j + 1) * 3 * N_DIMS))
            idx += list(range(lay["occupancy"][0] + j * N_TENSORS, lay["occupancy"][0] + (j + 1) * N_TENSORS))
            idx += [lay["fanout_used"][0] + 2 * j, lay["fanout_used"][0] + 2 * j + 1]
            idx += [lay["phase"][0] + 1 + j]  # "this level's order is being chosen"
            idx += [lay["mask"][0] + 3 * j + k for k in range(3)]  # which of its slots are open
            level_index.append(idx)
        global_index = list(range(*lay["layer"])) + list(range(a0, a0 + ARCH_GLOBAL_FEATURES))
        for name in ("objective", "remaining", "factor", "phase", "progress", "mask"):
            global_index += list(range(*lay[name]))
        self.register_buffer("level_index", torch.tensor(level_index, dtype=torch.long), persistent=False)
        self.register_buffer("global_index", torch.tensor(global_index, dtype=torch.long), persistent=False)
        self.register_buffer("position", torch.eye(max_levels), persistent=False)
        per_level = len(level_index[0]) + max_levels
        self.level_net = nn.Sequential(
            nn.Linear(per_level, level_dim), nn.ReLU(), nn.Linear(level_dim, level_dim), nn.ReLU()
        )
        self.global_net = nn.Sequential(nn.Linear(len(global_index), global_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(max_levels * level_dim + global_dim, features_dim), nn.ReLU())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        b = obs.shape[0]
        rows = obs[:, self.level_index]  # (B, L, per-level features)
        rows = torch.cat([rows, self.position.expand(b, -1, -1)], dim=-1)
        levels = self.level_net(rows).reshape(b, -1)
        return self.head(torch.cat([levels, self.global_net(obs[:, self.global_index])], dim=-1))


EXTRACTORS: dict[str, Any] = {"levelwise": LevelwiseExtractor}
"""Names usable as `policy_kwargs.features_extractor` in agents/*.yaml ("flatten" = SB3's default MLP input)."""
