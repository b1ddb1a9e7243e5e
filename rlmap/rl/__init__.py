"""Reinforcement learning: the Gymnasium environment, the layer sampler, the policy network, training
(Stable-Baselines3) and zero-shot mapping with a trained policy.  Registers the "policy" mapper and the
Gymnasium environment "rlmap/Mapping-v0"."""

from typing import Any

from rlmap.rl.registration import register_env
from rlmap.search.driver import register_mapper


def _policy_mapper() -> Any:
    from rlmap.rl.mapper import PolicyMapper  # torch / SB3 load only when the mapper is asked for

    return PolicyMapper()


register_mapper("policy", _policy_mapper)
register_env()
