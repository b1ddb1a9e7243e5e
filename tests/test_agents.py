"""RL agents: configs, training runs (logs, checkpoints, resume), zero-shot mapping, CLI, shipped policies."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("sb3_contrib")

from rlmap.cli.app import run  # noqa: E402
from rlmap.model.costmodel import CostModel  # noqa: E402
from rlmap.rl.checkpoint import load_policy  # noqa: E402
from rlmap.rl.config import ALGOS, TrainConfig, load_agent_config  # noqa: E402
from rlmap.rl.env import MappingEnv  # noqa: E402
from rlmap.rl.mapper import distinct_layers, map_layers, map_network_with_policy  # noqa: E402
from rlmap.rl.training import train  # noqa: E402
from rlmap.spec.errors import SpecError  # noqa: E402
from rlmap.spec.io import agents_dir, checkpoints_dir, load_architecture, load_mapping, load_network  # noqa: E402


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(run_dir.glob("tensorboard/**/events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def _config(algo: str = "maskable_ppo", timesteps: int = 1024, **kw) -> TrainConfig:
    agent = load_agent_config(algo)
    agent = agent.model_copy(update={"hyperparams": {**agent.hyperparams, **_small(algo)}})
    base = dict(
        agent_name=algo,
        agent=agent,
        networks=["resnet18"],
        eval_networks=["bert_base"],
        timesteps=timesteps,
        n_envs=2,
        eval_every=512,
        checkpoint_every=512,
        seed=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def _small(algo: str) -> dict:
    if algo in ("maskable_ppo", "ppo"):
        return {"n_steps": 128, "batch_size": 128, "n_epochs": 1}
    if algo == "dqn":
        return {"learning_starts": 100, "buffer_size": 2000}
    return {}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    train(_config(), run_dir, progress=False)
    return run_dir


# ----------------------------------------------------------------------------- configs
def test_every_shipped_agent_config_validates() -> None:
    names = sorted(p.stem for p in agents_dir().glob("*.yaml"))
    assert {"maskable_ppo", "ppo", "a2c", "dqn"} <= set(names)
    for name in names:
        cfg = load_agent_config(name)
        assert cfg.algo in ALGOS
        assert (cfg.invalid_actions == "mask") == (cfg.algo == "maskable_ppo")


@pytest.mark.parametrize(
    "text, field",
    [
        ("algo: ppo\ninvalid_actions: mask\n", "invalid_actions"),
        ("algo: maskable_ppo\ninvalid_actions: mask\nlearning_rate: 3\n", "learning_rate"),
        ("algo: sac\ninvalid_actions: mask\n", "algo"),
        ("algo: maskable_ppo\ninvalid_actions: mask\npolicy_kwargs: {features_extractor: cnn}\n", "features_extractor"),
    ],
)
def test_bad_agent_config_names_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_agent_config(p)
    assert str(p) in str(exc.value) and field in str(exc.value)


def test_unknown_agent_name_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match="maskable_ppo"):
        load_agent_config("nosuch")


# ----------------------------------------------------------------------------- training run
def test_training_writes_config_checkpoints_and_tensorboard(trained: Path) -> None:
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["agent"]["algo"] == "maskable_ppo" and cfg["networks"] == ["resnet18"] and cfg["timesteps"] == 1024
    assert (trained / "model.zip").exists() and (trained / "checkpoints" / "last.zip").exists()
    tags = _scalars(trained)
    for tag in (
        "rlmap/edp_ratio",
        "rlmap/valid",
        "rlmap/episode_reward",
        "rollout/ep_rew_mean",
        "eval/bert_base/edp_ratio",
        "eval/edp_ratio",
    ):
        assert tag in tags, tag
    assert all(v == 1.0 for _s, v in tags["rlmap/valid"])  # masked episodes are always valid
    ratio = tags["eval/bert_base/edp_ratio"][-1][1]
    assert 0 < ratio < math.inf


def test_fresh_run_refuses_to_overwrite(trained: Path) -> None:
    with pytest.raises(SpecError, match="--resume"):
        train(_config(), trained, progress=False)


def test_resume_continues_steps_and_log(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    first = train(_config(timesteps=512), run_dir, progress=False)
    assert 512 <= first.num_timesteps < 1024
    from rlmap.rl.config import load_run_config

    # resuming with nothing left to do returns the checkpoint itself: same weights, same step counter
    same = train(load_run_config(run_dir), run_dir, resume=True, progress=False)
    assert same.num_timesteps == first.num_timesteps
    for a, b in zip(first.model.policy.parameters(), same.model.policy.parameters()):
        assert np.array_equal(a.detach().numpy(), b.detach().numpy())
    cfg = load_run_config(run_dir).model_copy(update={"timesteps": 1024})
    second = train(cfg, run_dir, resume=True, progress=False)
    assert second.num_timesteps >= 1024
    # same TensorBoard run folder, steps carry on from the first invocation
    assert len(list((run_dir / "tensorboard").iterdir())) == 1
    steps = sorted(s for s, _v in _scalars(run_dir)["rlmap/edp_ratio"])
    assert steps[0] <= first.num_timesteps < steps[-1]
    assert len(steps) == len(set(steps))  # the resumed part did not restart its step count at 0


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_unmasked_algorithms_train_and_map_validly(tmp_path: Path, algo: str) -> None:
    res = train(_config(algo, timesteps=600, eval_networks=[]), tmp_path / algo, progress=False)
    assert res.num_timesteps >= 600
    pol = load_policy(tmp_path / algo)
    arch = load_architecture("eyeriss")
    layers = distinct_layers("bert_base")
    for r, layer in zip(map_layers(pol, layers, arch, samples=4), layers):
        assert r.cost is not None and r.cost.valid  # masked logits: only allowed actions are taken
        assert r.cost.macs == layer.macs


# ----------------------------------------------------------------------------- zero-shot mapping
def test_greedy_is_deterministic_and_best_of_k_no_worse(trained: Path) -> None:
    pol = load_policy(trained)
    arch = load_architecture("eyeriss")
    layers = distinct_layers("mobilenetv2")[:6]
    g1 = map_layers(pol, layers, arch, samples=1)
    g2 = map_layers(pol, layers, arch, samples=1)
    k = map_layers(pol, layers, arch, samples=8, seed=3)
    for a, b, c, layer in zip(g1, g2, k, layers):
        assert a.best == b.best and a.evaluations == 1 and c.evaluations == 8
        assert c.best <= a.best  # sample 0 is the greedy episode
        assert c.notes["greedy"] == a.best
        assert len(c.curve) == 8 and np.all(np.diff(c.curve) <= 0)
        # the reported cost is the cost model's score of the reported mapping
        again = CostModel(layer, arch).evaluate(c.mapping)
        assert again.valid and math.isclose(again.edp, c.cost.edp, rel_tol=1e-12)


def test_policy_samples_stop_at_the_time_limit_greedy_kept(trained: Path) -> None:
    pol = load_policy(trained)
    arch = load_architecture("eyeriss")
    layers = distinct_layers("mobilenetv2")[:2]
    greedy = map_layers(pol, layers, arch, samples=1)
    import time

    t0 = time.perf_counter()
    res = map_layers(pol, layers, arch, samples=100_000, seed=3, time_limit=0.5)
    assert time.perf_counter() - t0 < 0.5 + 5.0  # the greedy episodes (one pool batch) still finish
    for g, r in zip(greedy, res):
        assert 1 <= r.evaluations < 100_000 and "time limit 0.5 s reached" in r.notes["stopped"]
        assert r.notes["greedy"] == g.best and r.best <= g.best and len(r.curve) == r.evaluations


def test_greedy_matches_a_plain_env_rollout(trained: Path) -> None:
    """The lockstep batch gives the same mapping as stepping one environment with the same policy."""
    pol = load_policy(trained)
    arch = load_architecture("eyeriss")
    layer = distinct_layers("resnet50")[3]
    env = MappingEnv(arch=arch, layers=[layer], reference="none")
    obs, info = env.reset(options={"layer": layer})
    while True:
        a = int(np.argmax(pol.logits(obs[None], info["action_mask"][None])[0]))
        obs, _r, term, _t, info = env.step(a)
        if term:
            break
    assert math.isclose(map_layers(pol, [layer], arch)[0].best, info["edp"], rel_tol=1e-12)


def test_network_totals_count_repeats(trained: Path) -> None:
    pol = load_policy(trained)
    arch = load_architecture("eyeriss")
    net = load_network("resnet50")
    res = map_network_with_policy(pol, net, arch)
    assert len(res.results) == len(net.layers)
    energy = sum(r.cost.energy * l.repeat for l, r in zip(net.layers, res.results))
    assert math.isclose(res.energy, energy, rel_tol=1e-12) and res.energy > 0


# ----------------------------------------------------------------------------- CLI
def test_cli_map_writes_mappings_that_eval_accepts(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert (
        run(["map", "--network", "bert_base", "--arch", "eyeriss", "--policy", str(trained), "-k", "4", "-o", str(out)])
        == 0
    )
    text = capsys.readouterr().out
    assert "network total" in text and "best of 4" in text
    files = sorted((out / "mappings").glob("*.yaml"))
    assert len(files) == len(load_network("bert_base").layers)
    m, lname = load_mapping(files[0], load_architecture("eyeriss"))
    assert run(["eval", "--network", "bert_base", "--arch", "eyeriss", "--mapping", str(files[0])]) == 0


@pytest.mark.parametrize(
    "args, needle",
    [
        (["map", "--arch", "nosuch"], "nosuch"),
        (["train", "--init", "/nonexistent/run", "-o", "RUNDIR"], "--init"),
        (["train", "--arch", "eyeriss,nosuch", "-o", "RUNDIR"], "nosuch"),
        (["map", "--policy", "/nonexistent/run"], "not found"),
        (["map", "--samples", "0", "--network", "bert_base"], "--samples"),
        (["train", "--arch", "eyeriss"], "-o"),
        (["train", "--agent", "nosuch", "-o", "/tmp/x"], "unknown agent"),
        (["train", "--networks", "resnet18", "--eval-networks", "resnet18", "-o", "/tmp/x"], "both"),
        (["train", "--networks", "nosuchnet", "--eval-networks", "", "-o", "RUNDIR"], "nosuchnet"),
    ],
)
def test_cli_user_errors_are_one_line(
    args: list[str], needle: str, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    args = [str(tmp_path / "run") if a == "RUNDIR" else a for a in args]
    assert run(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and needle in err


def test_cli_train_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "cli_run"
    assert (
        run(
            [
                "train",
                "--networks",
                "bert_base",
                "--eval-networks",
                "",
                "--timesteps",
                "300",
                "--n-envs",
                "2",
                "-o",
                str(run_dir),
            ]
        )
        == 0
    )
    assert "steps" in capsys.readouterr().out
    assert run(["train", "-o", str(run_dir)]) == 2  # refuses to overwrite
    assert run(["train", "--resume", str(run_dir), "--timesteps", "5000", "--time-limit", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out


# ----------------------------------------------------------------------------- the feature extractor
def test_levelwise_extractor_sees_every_observation_feature() -> None:
    import torch

    from rlmap.rl.policy import LevelwiseExtractor

    env = MappingEnv()
    ext = LevelwiseExtractor(env.observation_space)
    used = set(ext.level_index.flatten().tolist()) | set(ext.global_index.tolist())
    assert used == set(range(env.obs_size))
    obs, _ = env.reset(seed=0)
    out = ext(torch.as_tensor(obs[None]))
    assert out.shape == (1, 256)
    # one level's row changes only through that level's encoder input: perturbing level 3's mapping
    # block changes the output, perturbing nothing does not
    a0 = env.obs_layout["mapping"][0] + 3 * 3 * 8
    pert = obs.copy()
    pert[a0] += 0.5
    assert not torch.allclose(ext(torch.as_tensor(pert[None])), out)


# ----------------------------------------------------------------------------- shipped checkpoints
SHIPPED = sorted(p for p in checkpoints_dir().glob("policy_*") if (p / "model.zip").exists())


def test_at_least_two_policies_are_shipped() -> None:
    archs = {p.name.removeprefix("policy_") for p in SHIPPED}
    assert "eyeriss" in archs and len(archs) >= 2


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_policy_loads_maps_and_has_a_card(folder: Path) -> None:
    card = (folder / "MODEL_CARD.md").read_text()
    from rlmap.rl.checkpoint import GENERAL_POLICY, trained_architectures

    if folder.name == GENERAL_POLICY:  # trained on several architectures: check the first
        pol = load_policy(folder)
        arch_name = trained_architectures(pol.config)[0]
    else:
        pol = load_policy(None, folder.name.removeprefix("policy_"))
        arch_name = pol.arch_name
        assert arch_name == folder.name.removeprefix("policy_")
    for name in ("mobilenetv2", "mnasnet", "bert_base", "resnet50_sparse"):
        assert name not in pol.trained_on  # the zero-shot benchmark's networks are held out
        assert name in card
    assert (folder / "model.zip").stat().st_size < 5_000_000
    arch = load_architecture(arch_name)
    res = map_network_with_policy(pol, load_network("bert_base"), arch)
    assert all(r.cost is not None and r.cost.valid for r in res.results)


def test_map_a_network_imported_from_pytorch(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import torch
    from torch import nn

    from rlmap.interop.pytorch import import_module
    from rlmap.spec.io import save_network

    model = nn.Sequential(
        nn.Conv2d(3, 24, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(24, 24, 3, padding=1, groups=24),
        nn.Conv2d(24, 40, 1),
        nn.Flatten(),
        nn.Linear(40 * 16 * 16, 10),
    )
    net = import_module(model, torch.zeros(1, 3, 32, 32), "tiny").network
    path = save_network(net, tmp_path / "tiny.yaml")
    assert run(["map", "--network", str(path), "--arch", "eyeriss", "--policy", str(trained)]) == 0
    text = capsys.readouterr().out
    assert "network total" in text and all(l.name in text for l in net.layers)


def test_readme_main_command_runs_rlmap_map(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The README's first command ends in an `rlmap map` call on a shipped policy; run that part."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text().splitlines()
    cmd = next(line for line in readme if "pip install -e ." in line and "rlmap" in line.split("&&")[-1])
    argv = cmd.split("&&")[-1].split()
    assert argv[:2] == ["rlmap", "map"]
    argv = [str(tmp_path / "results") if a == "results/" else a for a in argv[1:]]
    assert run(argv) == 0
    assert "network total" in capsys.readouterr().out
    assert (tmp_path / "results" / "summary.json").exists()


def test_cli_list_shows_the_shipped_policies(capsys: pytest.CaptureFixture) -> None:
    assert run(["list"]) == 0
    text = capsys.readouterr().out
    assert "Pretrained policies" in text
    from rlmap.rl.checkpoint import load_policy, trained_steps

    for folder in SHIPPED:
        assert folder.name.removeprefix("policy_") in text
        steps = trained_steps(folder / "model.zip")
        assert steps == load_policy(folder).model.num_timesteps and f"{steps:,}" in text


def test_held_out_eval_scores_a_layer_left_without_a_valid_mapping_as_inf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A held-out layer the policy could not map (result with cost None) made the evaluation raise
    AttributeError mid-training; it now counts as infinitely worse, as the environment scores it."""
    from types import SimpleNamespace

    import rlmap.rl.checkpoint
    import rlmap.rl.mapper
    from rlmap.rl.env import reference_costs
    from rlmap.rl.training import _callbacks

    held = _callbacks(_config(), tmp_path, False, 0)[1]
    held._on_training_start()
    held.model = None  # the policy is not consulted: map_layers is replaced below
    layers = held.layers["bert_base"]
    invalid: set[int] = set()

    def fake_map_layers(policy, layers, arch, objective, samples=1):  # noqa: ANN001, ANN202
        # every layer at exactly twice its reference EDP, except those in `invalid` (no valid mapping)
        return [
            SimpleNamespace(
                cost=None if i in invalid else SimpleNamespace(edp=2 * reference_costs(l, arch, 16, 0)["best_edp"])
            )
            for i, l in enumerate(layers)
        ]

    monkeypatch.setattr(rlmap.rl.checkpoint, "Policy", lambda *a, **k: None)
    monkeypatch.setattr(rlmap.rl.mapper, "map_layers", fake_map_layers)
    stats = held.evaluate()
    assert stats["eval/bert_base/edp_ratio"] == pytest.approx(2.0, rel=1e-12)
    assert stats["eval/edp_ratio"] == pytest.approx(2.0, rel=1e-12)
    invalid.add(len(layers) - 1)
    stats = held.evaluate()
    assert stats["eval/bert_base/edp_ratio"] == math.inf
    assert stats["eval/edp_ratio"] == math.inf
