"""`rlmap/Mapping-v0` in Gymnasium's registry, as plug-in packages do it: `import rlmap` (or any rlmap.rl module)
registers it, so `gym.make("rlmap/Mapping-v0", ...)` and SB3's `make_vec_env("rlmap/Mapping-v0", ...)` work.

Gymnasium 1.x wrappers no longer forward unknown attributes, so the environment made by `gym.make` carries an
outermost `ActionMasks` wrapper whose `action_masks()` reaches the environment's (sb3-contrib's convention,
docs/env.md).  Importing this module costs only Gymnasium; the environment itself loads on `gym.make`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import WrapperSpec
from gymnasium.utils import RecordConstructorArgs

ENV_ID = "rlmap/Mapping-v0"


class ActionMasks(gym.Wrapper, RecordConstructorArgs):
    """Exposes the wrapped environment's `action_masks()` through Gymnasium's wrapper stack."""

    def __init__(self, env: gym.Env) -> None:
        RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def action_masks(self) -> np.ndarray:
        return np.asarray(self.env.get_wrapper_attr("action_masks")(), dtype=bool)


def register_env() -> None:
    """Register ENV_ID once (a second call, or a module reload, keeps the first registration)."""
    if ENV_ID in gym.registry:
        return
    masks: Any = WrapperSpec(name="ActionMasks", entry_point="rlmap.rl.registration:ActionMasks", kwargs={})
    gym.register(
        id=ENV_ID, entry_point="rlmap.rl.env:MappingEnv", disable_env_checker=False, additional_wrappers=(masks,)
    )
