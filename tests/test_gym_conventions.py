"""Gymnasium / Stable-Baselines3 conventions: registration on `import rlmap`, action masks through gym.make's
wrappers, SB3's make_vec_env (render_mode rgb_array) and reset(options={"layer": name})."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import rlmap  # noqa: F401  (registers rlmap/Mapping-v0)
import rlmap.rl.env  # noqa: F401  (so that, before registration on `import rlmap`, each test fails on its own point)
from rlmap.spec.io import load_network
from rlmap.spec.layer import layer_key

ENV = "rlmap/Mapping-v0"


def test_import_rlmap_registers_the_environment() -> None:
    code = (
        "import gymnasium, rlmap, sys; assert 'rlmap/Mapping-v0' in gymnasium.registry; "
        "env = gymnasium.make('rlmap/Mapping-v0', networks=['resnet18']); env.reset(seed=0); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_action_masks_through_gym_make_wrappers() -> None:
    env = gym.make(ENV, arch="eyeriss", networks=["resnet18"])
    assert isinstance(env, gym.Wrapper)  # the env checker and order enforcing stay on
    _obs, info = env.reset(seed=3)
    for _ in range(40):
        masks = env.action_masks()
        assert masks.dtype == bool and masks.shape == (env.action_space.n,)
        assert np.array_equal(masks, info["action_mask"]) and masks.any()
        _obs, _r, term, trunc, info = env.step(int(np.flatnonzero(masks)[-1]))
        if term or trunc:
            break
    assert term and info["valid"]


def test_rgb_array_render_pictures_the_mapping() -> None:
    env = gym.make(ENV, arch="eyeriss", networks=["resnet18"], render_mode="rgb_array")
    _obs, info = env.reset(seed=0, options={"layer": "conv1"})
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3 and first.shape[0] >= 200
    assert len(np.unique(first.reshape(-1, 3), axis=0)) > 20  # a drawing, not a blank frame
    for _ in range(6):  # place factors off DRAM: the picture must change with the mapping
        slots = np.flatnonzero(info["action_mask"])
        _obs, _r, _t, _tr, info = env.step(int(slots[-1]))
    later = env.render()
    assert later.shape == first.shape and np.mean(np.any(later != first, axis=2)) > 0.001


def test_sb3_make_vec_env_trains_maskable_ppo() -> None:
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(ENV, n_envs=2, seed=0, env_kwargs={"arch": "eyeriss", "networks": ["resnet18"]})
    venv.reset()
    assert get_action_masks(venv).shape == (2, 18)
    frame = venv.render()  # SB3 asks for rgb_array and tiles the two environments' pictures
    assert frame is not None and frame.ndim == 3 and frame.dtype == np.uint8
    model = MaskablePPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, device="cpu", seed=0)
    model.learn(64)
    assert model.num_timesteps >= 64
    venv.close()


def test_reset_accepts_a_layer_name() -> None:
    env = gym.make(ENV, arch="eyeriss", networks=["resnet18", "vgg16", "resnet50"])
    conv1 = next(x for x in load_network("resnet18").layers if x.name == "conv1")
    fc50 = next(x for x in load_network("resnet50").layers if x.name == "fc")
    for name, want in (("conv1", conv1), ("resnet18/conv1", conv1), ("resnet50/fc", fc50)):
        env.reset(seed=0, options={"layer": name})
        assert layer_key(env.unwrapped._layer) == layer_key(want), name
    with pytest.raises(ValueError, match="no layer named 'conv9'"):
        env.reset(options={"layer": "conv9"})
    with pytest.raises(ValueError, match="ambiguous.*resnet18/fc.*resnet50/fc"):
        env.reset(options={"layer": "fc"})  # two differently shaped layers called fc
