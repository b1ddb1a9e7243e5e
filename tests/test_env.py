"""The mapping environment (rlmap/rl/env.py) and its layer sampler (rlmap/rl/layer_sampler.py).

The headline property: with action masks, every episode ends in a valid mapping, checked on 10,000
random masked episodes over every zoo network, every preset, synthetic layers and random densities,
each mapping re-validated by a fresh cost model.  The rest covers the Gymnasium contract (check_env,
gymnasium.make, seeding), SB3 vector envs, the reward and its reference, the mask's exactness and the
TensorBoard logging of a tiny MaskablePPO run.
"""

from __future__ import annotations

import itertools
import math
import random
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest

import rlmap.rl.env as rlenv
from rlmap.model.costmodel import CostModel
from rlmap.rl.env import ENV_ID, ORDER_MENU, MappingEnv, factor_tokens, reference_costs
from rlmap.rl.layer_sampler import DENSITY_GRID, LayerSampler, synthetic_layer
from rlmap.search.mapspace import MapSpace
from rlmap.spec.io import list_architectures, list_networks, load_architecture, load_network
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import Mapping
from rlmap.spec.problem import N_DIMS

PRESETS = list_architectures()
ZOO = list_networks()


def play(
    env: MappingEnv, rng: random.Random, options: dict | None = None, seed: int | None = None
) -> tuple[list[np.ndarray], list[float], dict]:
    """One random masked episode; returns observations, rewards and the final info."""
    obs, info = env.reset(seed=seed, options=options)
    observations, rewards = [obs], []
    while True:
        allowed = [a for a, ok in enumerate(info["action_mask"]) if ok]
        obs, r, terminated, truncated, info = env.step(rng.choice(allowed))
        observations.append(obs)
        rewards.append(r)
        assert not truncated
        if terminated:
            return observations, rewards, info


# ----------------------------------------------------------------------------- validity
def test_10000_random_masked_episodes_are_all_valid():
    env = MappingEnv(arch=PRESETS, networks=ZOO, synthetic=0.25, random_density=0.3, reference="none")
    rng = random.Random(0)
    env.reset(seed=0)
    models: dict = {}
    seen_archs, seen_layers, invalid = set(), set(), []
    start = time.perf_counter()
    for episode in range(10_000):
        _obs, info = env.reset()
        while True:
            mask = info["action_mask"]
            allowed = [a for a in range(len(mask)) if mask[a]]
            _obs, _r, terminated, _t, info = env.step(allowed[int(rng.random() * len(allowed))])
            if terminated:
                break
        seen_archs.add(info["arch"])
        seen_layers.add(info["layer"])
        if not info["valid"]:
            invalid.append((info["layer"], info["arch"], info.get("reason")))
        if episode % 20 == 0:  # independent re-check with a fresh cost model and the structural checks
            layer, arch = env._layer, env._ai.arch
            key = (id(arch), rlenv.layer_key(layer))
            model = models.get(key) or models.setdefault(key, CostModel(layer, arch))
            info["mapping"].check_structure(layer, arch)
            assert model.evaluate(info["mapping"]).valid
    elapsed = time.perf_counter() - start
    assert invalid == []
    assert seen_archs == set(PRESETS)
    assert len(seen_layers) > 300
    assert elapsed < 60, f"10,000 episodes took {elapsed:.1f} s"


def test_mask_is_exact_for_slots():
    """An allowed slot keeps the partial mapping valid; a forbidden slot of a real level breaks it."""
    rng = random.Random(1)
    for arch_name, net in [
        ("eyeriss", "resnet18"),
        ("simba", "mobilenetv2"),
        ("tpu_like", "bert_base"),
        ("sparse_eyeriss", "resnet50_sparse"),
        ("edge", "vgg16"),
    ]:
        env = MappingEnv(arch=arch_name, networks=[net], reference="none")
        arch = env.archs[0].arch
        for episode in range(6):
            _obs, info = env.reset(seed=episode)
            model = CostModel(env._layer, arch)
            while env._phase == 0:
                mask = info["action_mask"]
                d, f = env._ld.tokens[env._i]
                for slot in range(3 * arch.n_levels):
                    m = env.mapping()
                    lvl, kind = divmod(slot, 3)
                    mats = [list(map(list, x)) for x in (m.temporal, m.spatial_x, m.spatial_y)]
                    mats[0][0][d] //= f  # take the factor out of DRAM temporal...
                    mats[kind][lvl][d] *= f  # ...and put it in this slot
                    trial = Mapping(*(tuple(map(tuple, x)) for x in mats), order=m.order)
                    assert model.evaluate(trial).valid == bool(mask[slot]), (arch_name, slot, d, f)
                assert not mask[3 * arch.n_levels :].any()
                allowed = np.flatnonzero(mask)
                _obs, _r, _term, _trunc, info = env.step(int(rng.choice(list(allowed))))


def test_order_steps_only_where_the_order_matters():
    """Skipped levels (the innermost, or < 2 temporal loops > 1) cannot change the cost."""
    rng = np.random.default_rng(0)
    for arch_name in ("eyeriss", "simba"):
        arch = load_architecture(arch_name)
        for layer in load_network("resnet18").layers[:6]:
            space = MapSpace(layer, arch)
            batch = space.decode(space.sample(8, rng)[0])
            model = space.model
            for i in range(len(batch)):
                m = batch[i]
                base = model.evaluate(m)
                for lvl in range(arch.n_levels):
                    if lvl < arch.n_levels - 1 and sum(f > 1 for f in m.temporal[lvl]) >= 2:
                        continue
                    order = list(m.order)
                    order[lvl] = tuple(rng.permutation(N_DIMS))
                    other = model.evaluate(Mapping(m.temporal, m.spatial_x, m.spatial_y, tuple(order)))
                    assert other.energy == pytest.approx(base.energy, rel=1e-12)
                    assert other.cycles == pytest.approx(base.cycles, rel=1e-12)


def test_invalid_action_falls_back_and_stays_valid():
    env = MappingEnv(arch="eyeriss", networks=["vgg16"], reference="none", invalid_action_penalty=0.5)
    _obs, info = env.reset(seed=0)
    forbidden = [a for a, ok in enumerate(info["action_mask"]) if not ok]
    _obs, r, _t, _tr, info = env.step(forbidden[-1])
    assert info["invalid_action"] and r == -0.5
    while True:  # keep choosing the largest (often forbidden) action
        _obs, _r, terminated, _tr, info = env.step(env.n_actions - 1)
        if terminated:
            break
    assert info["valid"] and info["invalid_actions"] >= 1


# ----------------------------------------------------------------------------- gymnasium contract
def test_check_env_and_registration():
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no checker warning either
        # through gymnasium.make so the checker also finds the spec it needs for the render-mode checks
        check_env(gym.make(ENV_ID, arch="eyeriss", networks=["resnet18"], render_mode="ansi").unwrapped)
        check_env(
            gym.make(
                ENV_ID,
                arch=["simba", "sparse_eyeriss"],
                networks=["mobilenetv2"],
                synthetic=0.5,
                random_density=0.5,
                reference="bound",
            ).unwrapped
        )
        check_env(MappingEnv(arch="tpu_like", networks=["gpt2_small"]), skip_render_check=True)
    env = gym.make(ENV_ID, arch="tpu_like", networks=["bert_base"], reference="bound")
    assert isinstance(env.unwrapped, MappingEnv)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space == gym.spaces.Discrete(12 + len(ORDER_MENU))
    assert np.array_equal(env.unwrapped.action_masks(), info["action_mask"])
    env.close()


def test_same_spaces_for_every_preset_and_layer_kind():
    sizes = set()
    for arch_name in PRESETS:
        env = MappingEnv(arch=arch_name, networks=["gpt2_small", "mobilenetv2"], synthetic=0.5, reference="none")
        for seed in range(5):
            obs_list, _r, _info = play(env, random.Random(seed), seed=seed)
            for obs in obs_list:
                assert obs.dtype == np.float32 and env.observation_space.contains(obs)
        sizes.add((env.observation_space.shape, env.action_space.n))
    assert len(sizes) == 1


def test_reset_seed_reproduces_episodes():
    kw = dict(arch=["eyeriss", "edge"], networks=["resnet50"], synthetic=0.3, random_density=0.3, reference="bound")
    runs = []
    for _ in range(2):
        env = MappingEnv(**kw)
        obs, rewards, info = [], [], []
        for ep in range(5):
            o, r, i = play(env, random.Random(ep), seed=100 if ep == 0 else None)
            obs += o
            rewards += r
            info.append((i["layer"], i["arch"], i["mapping"], i["edp"]))
        runs.append((obs, rewards, info))
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], runs[1][0]))
    assert runs[0][1] == runs[1][1] and runs[0][2] == runs[1][2]
    env = MappingEnv(**kw)
    layers = {play(env, random.Random(0), seed=s)[2]["layer"] for s in range(8)}
    assert len(layers) > 1  # different seeds draw different layers


def test_episode_structure_and_info():
    env = MappingEnv(arch="eyeriss", networks=["resnet18"])
    layer = load_network("resnet18").layer("layer3.0.conv2")
    _obs, rewards, info = play(env, random.Random(0), options={"layer": layer}, seed=0)
    n_tokens = len(factor_tokens(layer.problem_dims, env.max_factor_steps))
    assert n_tokens <= len(rewards) <= n_tokens + 2  # eyeriss: at most 2 order steps (DRAM, GLB)
    assert all(r == 0.0 for r in rewards[:-1])
    for key in ("energy", "cycles", "edp", "edp_ratio", "mapping", "valid", "layer", "arch", "reference"):
        assert key in info
    assert info["edp"] == pytest.approx(info["energy"] * info["cycles"])
    assert CostModel(layer, env.archs[0].arch).evaluate(info["mapping"]).edp == pytest.approx(info["edp"])


# ----------------------------------------------------------------------------- reward
def test_reward_is_log_ratio_to_best_of_16_random():
    layer = load_network("mobilenetv2").layer("block3.dw")
    arch = load_architecture("eyeriss")
    ref = reference_costs(layer, arch)
    space = MapSpace(layer, arch)
    genome, _ = space.sample(16, np.random.default_rng([0, rlenv._stable_hash(rlenv.layer_key(layer, False))]))
    edps = space.model.evaluate_batch(space.decode(genome)).edp
    assert ref["best_edp"] == pytest.approx(float(edps.min()))
    assert reference_costs(layer.model_copy(update={"name": "renamed"}), arch) is ref  # cached by shape
    for objective in ("edp", "energy", "latency"):
        env = MappingEnv(arch="eyeriss", objective=objective, networks=["mobilenetv2"])
        _o, rewards, info = play(env, random.Random(3), options={"layer": layer}, seed=0)
        assert info["edp_ratio"] == pytest.approx(info["edp"] / ref["best_edp"])
        assert info["ratio"] == pytest.approx(info["objective"] / ref[f"best_{objective}"])
        assert rewards[-1] == pytest.approx(-math.log(info["ratio"]))
    env = MappingEnv(arch="eyeriss", networks=["mobilenetv2"], reference="median")
    _o, rewards, info = play(env, random.Random(3), options={"layer": layer}, seed=0)
    assert rewards[-1] == pytest.approx(-math.log(info["edp"] / ref["median_edp"]))


def test_factor_tokens_largest_first_and_merged():
    dims = (1, 1, 2**14, 3 * 2**8, 1024, 1, 1, 1)  # 33 prime copies
    tokens = factor_tokens(dims, 32)
    assert len(tokens) == 32
    for d in range(N_DIMS):
        assert math.prod(f for dd, f in tokens if dd == d) == dims[d]
    assert [f for _d, f in tokens] == sorted((f for _d, f in tokens), reverse=True)
    assert factor_tokens((1, 1, 7, 13, 5, 5, 3, 3), 32) == [(3, 13), (2, 7), (4, 5), (5, 5), (6, 3), (7, 3)]


# ----------------------------------------------------------------------------- layer sampler
def test_synthetic_layers_are_valid_irregular_and_seeded():
    rng = np.random.default_rng(0)
    layers = [synthetic_layer(rng, f"s{i}") for i in range(400)]
    kinds = {lay.kind for lay in layers}
    assert kinds == {"conv", "depthwise", "pointwise", "gemm", "matmul"}
    dims = [d for lay in layers for d in (lay.K, lay.C, lay.P)]
    assert any(d > 2 and all(d % p for p in range(2, d)) for d in dims)  # primes
    assert any(d % 2 for d in dims if d > 1)
    assert any(lay.stride != (1, 1) for lay in layers) and any(lay.R != lay.S for lay in layers)
    a = LayerSampler(networks=["resnet18"], synthetic=0.5, random_density=0.5, seed=3)
    b = LayerSampler(networks=["resnet18"], synthetic=0.5, random_density=0.5, seed=3)
    assert a.synthetic_layers == b.synthetic_layers
    assert [a.sample(np.random.default_rng(s)) for s in range(20)] == [
        b.sample(np.random.default_rng(s)) for s in range(20)
    ]
    rng = np.random.default_rng(1)
    dens = [a.sample(rng).density for _ in range(200)]
    assert any(not d.is_dense for d in dens)
    assert all(round(d.inputs * DENSITY_GRID) == d.inputs * DENSITY_GRID for d in dens)
    coarse = LayerSampler(networks=["resnet18"], random_density=1.0, density_low=0.2, density_grid=5, seed=3)
    seen = {(d.inputs, d.weights) for d in (coarse.sample(rng).density for _ in range(400))}
    assert {x for pair in seen for x in pair} == {0.2, 0.4, 0.6, 0.8, 1.0}
    with pytest.raises(ValueError):
        LayerSampler(networks=["resnet18"], synthetic=1.5)
    only_synth = LayerSampler(synthetic=1.0, synthetic_pool=0)
    assert only_synth.sample(np.random.default_rng(0)).name.startswith("synthetic/")


def test_explicit_layers_and_options():
    layer = Layer(name="odd", K=97, C=13, P=11, Q=7, R=3, S=1)
    env = MappingEnv(arch="simba", layers=[layer], reference="bound")
    _o, _r, info = play(env, random.Random(0), seed=0)
    assert info["layer"] == "odd" and info["valid"]
    env = MappingEnv(arch=["eyeriss", "simba"], layers=[layer], reference="bound")
    _o, _r, info = play(env, random.Random(0), options={"arch": "simba"}, seed=0)
    assert info["arch"] == "simba"


# ----------------------------------------------------------------------------- SB3
def test_sb3_dummy_and_subproc_vec_envs():
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    kw = dict(arch="eyeriss", networks=["resnet18"], reference="bound")
    thunks = [rlenv.make_env(i, 0, **kw) for i in range(2)]
    # fork: the workers inherit the imports (forkserver/spawn would re-import torch in each, ~5 s apiece)
    for venv in (DummyVecEnv(thunks), SubprocVecEnv(thunks, start_method="fork")):
        try:
            assert is_masking_supported(venv)
            venv.seed(5)
            obs = venv.reset()
            rng = np.random.default_rng(0)
            finished = 0
            for _ in range(120):
                masks = get_action_masks(venv)
                actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
                obs, _rew, dones, infos = venv.step(actions)
                assert obs.shape == (2, venv.observation_space.shape[0])
                for done, info in zip(dones, infos):
                    if done:
                        finished += 1
                        assert info["valid"] and "terminal_observation" in info and "episode" in info
            assert finished >= 4
        finally:
            venv.close()


def test_tiny_maskable_ppo_run_writes_tensorboard_tags(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, metrics = rlenv.train_maskable_ppo(
        dict(arch="eyeriss", networks=["resnet18"]),
        total_timesteps=256,
        log_dir=str(tmp_path),
        n_envs=2,
        ppo_kwargs=dict(n_steps=64, batch_size=64, n_epochs=1, policy_kwargs=dict(net_arch=[32])),
    )
    assert model.num_timesteps >= 256 and metrics.history
    event_files = list(tmp_path.rglob("events.out.tfevents.*"))
    assert event_files
    tags: set[str] = set()
    for f in event_files:
        acc = EventAccumulator(str(f))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    for tag in ("rollout/ep_rew_mean", "rlmap/episode_reward", "rlmap/edp_ratio", "rlmap/valid"):
        assert tag in tags, sorted(tags)
    info = rlenv.greedy_episode(
        MappingEnv(arch="eyeriss", networks=["mobilenetv2"]), model, load_network("mobilenetv2").layers[1]
    )
    assert info["valid"]


def test_order_menu():
    """Six distinct permutations (every ranking of the three tensors), G outermost."""
    orders = [o for _name, o in ORDER_MENU]
    assert len(set(orders)) == 6 and all(o[0] == 1 for o in orders)
    assert list(itertools.chain.from_iterable([sorted(o) for o in orders])) == list(range(N_DIMS)) * 6


def test_reward_from_the_shipped_surrogate_tracks_the_cost_model():
    """With reward_model set, episodes are scored by the surrogate; its rewards follow the true model's."""
    from rlmap.rl.env import MappingEnv
    from rlmap.surrogate.model import SurrogateRewardModel

    true_env = MappingEnv(arch="eyeriss", networks=["mobilenetv2"], sampler_seed=3)
    sur_env = MappingEnv(arch="eyeriss", networks=["mobilenetv2"], sampler_seed=3, reward_model=SurrogateRewardModel())
    diffs = []
    for ep in range(12):
        rewards = []
        for env in (true_env, sur_env):
            env.reset(seed=100 + ep)
            rng = np.random.default_rng(ep)
            done, info, reward = False, {}, 0.0
            while not done:
                mask = np.asarray(env.action_masks())
                _, reward, done, _, info = env.step(int(rng.choice(np.flatnonzero(mask))))
            rewards.append((reward, info))
        (r_true, i_true), (r_sur, i_sur) = rewards
        assert i_sur["reward_source"] == "surrogate" and "reward_source" not in i_true
        assert i_true["mapping"] == i_sur["mapping"]  # same seeds and actions: same mapping
        diffs.append(abs(r_true - r_sur))
    assert np.median(diffs) < 0.35  # ln-EDP error; the surrogate's median |log2 EDP| error is ~0.02 in-distribution


def test_observation_shows_densities_only_where_they_can_matter():
    """On a dense architecture two layers that differ only in density cost the same for every mapping, so
    they must look the same (and whichever is seen first must not change what the other looks like)."""
    sparse = load_network("resnet50_sparse").layers[5]
    assert min(sparse.density.as_tuple()) < 1.0
    dense = sparse.model_copy(update={"density": type(sparse.density)(), "name": "dense_twin"})
    lay = MappingEnv().obs_layout["layer"]
    for arch, same in (("eyeriss", True), ("sparse_eyeriss", False)):
        env = MappingEnv(arch=arch, layers=[sparse], reference="none")
        a, info_a = env.reset(options={"layer": sparse})
        b, _ = env.reset(options={"layer": dense})
        assert np.array_equal(a[lay[0] : lay[1]], b[lay[0] : lay[1]]) == same
        # the info names the layer asked for, not a cost-equivalent one cached earlier
        while True:
            _o, _r, term, _t, info = env.step(int(np.flatnonzero(env.action_masks())[0]))
            if term:
                break
        assert info["layer"] == "dense_twin"


def test_reset_options_layer_must_be_a_layer_or_a_name():
    env = gym.make(ENV_ID, arch="eyeriss", networks=["resnet18"], reference="none")
    with pytest.raises(TypeError, match=r"options\['layer'\] must be a Layer or a layer name.*got int 5"):
        env.reset(options={"layer": 5})
    with pytest.raises(ValueError, match=r"options\['arch'\] = 3 is not an index.*1 architecture"):
        env.reset(options={"arch": 3})
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        env.reset(options={"layer": "nope"})
    # a name and a Layer pin the same layer: the episode's problem is that layer's
    conv1 = load_network("resnet18").layer("conv1")
    for want in ("conv1", conv1):
        env.reset(seed=0, options={"layer": want, "arch": 0})
        assert env.unwrapped._layer.problem_dims == conv1.problem_dims == (1, 1, 64, 3, 112, 112, 7, 7)
    env.close()
