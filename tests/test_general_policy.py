"""Issue 14: training over several and generated architectures, fine-tuning with --init, `rlmap generate`, and
how `rlmap map` picks a policy and states its measured quality outside what it was trained on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rlmap.cli.app import run
from rlmap.hardware.generator import generate_architecture
from rlmap.rl import checkpoint
from rlmap.rl.checkpoint import coverage_note, default_policy, load_policy, trained_architectures
from rlmap.rl.config import TrainConfig, env_kwargs, load_agent_config, training_architectures
from rlmap.spec.io import checkpoints_dir, load_architecture

EYERISS = checkpoints_dir() / "policy_eyeriss"


def test_training_architectures_are_the_named_then_the_generated_ones() -> None:
    cfg = TrainConfig(
        agent_name="maskable_ppo",
        agent=load_agent_config("maskable_ppo"),
        arch="eyeriss, edge",
        generated=2,
        generated_seed=1000,
    )
    archs = training_architectures(cfg)
    assert [a.name for a in archs] == ["eyeriss", "edge", "gen1000", "gen1001"]
    assert archs[2] == generate_architecture(1000)
    assert len(env_kwargs(cfg)["arch"]) == 4
    assert trained_architectures(cfg.model_dump()) == ["eyeriss", "edge", "gen1000", "gen1001"]
    one = TrainConfig(agent_name="maskable_ppo", agent=load_agent_config("maskable_ppo"))
    assert env_kwargs(one)["arch"].name == "eyeriss"


def _params(path: Path) -> np.ndarray:
    pol = load_policy(path)
    return np.concatenate([p.detach().numpy().ravel() for p in pol.model.policy.parameters()])


def test_init_fine_tunes_from_the_checkpoint(tmp_path: Path) -> None:
    args = [
        "train",
        "--arch",
        "edge",
        "--generated",
        "1",
        "--networks",
        "bert_base",
        "--eval-networks",
        "",
        "--timesteps",
        "64",
        "--n-envs",
        "2",
        "--synthetic",
        "0",
    ]
    assert run([*args, "--init", str(EYERISS), "-o", str(tmp_path / "ft")]) == 0
    assert run([*args, "-o", str(tmp_path / "fresh")]) == 0
    base, tuned, fresh = _params(EYERISS), _params(tmp_path / "ft"), _params(tmp_path / "fresh")
    # one PPO update moves the weights a little; a fresh policy is far away
    assert np.linalg.norm(tuned - base) < 0.1 * np.linalg.norm(fresh - base)
    assert np.linalg.norm(tuned - base) > 0
    pol = load_policy(tmp_path / "ft")
    assert trained_architectures(pol.config) == ["edge", "gen1000"] and pol.config["init"] == str(EYERISS)


def test_generate_cli_writes_the_seeded_architectures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["generate", "-n", "2", "--seed", "40", "-o", str(tmp_path)]) == 0
    for s in (40, 41):
        assert load_architecture(str(tmp_path / f"gen{s}.yaml")) == generate_architecture(s)
    assert run(["generate", "-n", "1", "--seed", "40", "-o", str(tmp_path)]) == 2  # no silent overwrite
    assert "--force" in capsys.readouterr().err
    assert run(["generate", "--seed", "5"]) == 0
    assert "name: gen5" in capsys.readouterr().out


def test_held_out_generated_set_is_what_the_generator_gives() -> None:
    for s in range(8):
        assert load_architecture(f"gen{s}") == generate_architecture(s)  # loadable by name, never trained on


def _fake_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, special_greedy: float | None, general_greedy: float
) -> Path:
    for name in ("policy_eyeriss", "policy_general"):
        shutil.copytree(EYERISS, tmp_path / name)
    q = {
        "archs": {"eyeriss": {"greedy": general_greedy, "best": 1.0, "samples": 64, "layers": 3, "held_out": False}},
        "generated_held_out": {"archs": 8, "samples": 64, "greedy": 1.5, "best": 1.1},
    }
    (tmp_path / "policy_general" / "quality.json").write_text(json.dumps(q))
    if special_greedy is not None:
        (tmp_path / "policy_eyeriss" / "quality.json").write_text(
            json.dumps({"archs": {"eyeriss": {"greedy": special_greedy, "best": 1.0, "samples": 64, "layers": 3}}})
        )
    monkeypatch.setattr(checkpoint, "checkpoints_dir", lambda: tmp_path)
    return tmp_path


def test_default_policy_is_the_better_measured_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _fake_checkpoints(tmp_path, monkeypatch, special_greedy=1.2, general_greedy=1.1)
    assert default_policy("eyeriss")[0] == root / "policy_general"
    (root / "policy_eyeriss" / "quality.json").write_text(json.dumps({"archs": {"eyeriss": {"greedy": 1.05}}}))
    assert default_policy("eyeriss")[0] == root / "policy_eyeriss"
    assert default_policy("simba")[0] == root / "policy_general"  # no specialised one


def test_coverage_note_states_measured_quality(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _fake_checkpoints(tmp_path, monkeypatch, special_greedy=None, general_greedy=1.1)
    eyeriss = load_policy(EYERISS)
    assert coverage_note(eyeriss, "eyeriss") is None
    assert "never measured" in coverage_note(eyeriss, "simba")
    general = load_policy(root / "policy_general")  # its config says eyeriss only, so eyeriss is covered
    note = coverage_note(general, "gen3")
    assert "not trained on gen3" in note and "1.500x" in note and "8 held-out generated" in note
    general.config = {**general.config, "arch": "edge"}
    assert "greedy 1.100x" in coverage_note(general, "eyeriss")


def test_map_any_architecture_without_a_policy(capsys: pytest.CaptureFixture) -> None:
    if checkpoint.general_policy() is None:
        pytest.skip("no general policy shipped")
    assert run(["map", "--arch", "gen3", "--network", "bert_base"]) == 0
    out = capsys.readouterr().out
    assert "network total" in out and "not trained on gen3" in out and "policy_general" in out


def test_search_with_the_policy_mapper_uses_the_policy_map_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """`rlmap search --mapper policy` on an architecture without a specialised checkpoint falls back to the general
    policy exactly as `rlmap map` does (it used to refuse), and says what to do when nothing is shipped."""
    from rlmap.rl import mapper
    from rlmap.spec.errors import SpecError
    from rlmap.spec.io import load_network

    if checkpoint.general_policy() is None:
        pytest.skip("no general policy shipped")
    layer = next(lyr for lyr in load_network("resnet18").layers if lyr.name == "fc")
    arch = load_architecture("gen3")
    monkeypatch.setattr(mapper, "_SHIPPED", {})
    got = mapper.PolicyMapper().search(layer, arch, "edp", budget=1, seed=0)
    want = mapper.map_layers(load_policy(None, "gen3"), [layer], arch, "edp", samples=1, seed=0)[0]
    assert got.cost is not None and got.cost.valid and got.best == want.best
    monkeypatch.setattr(mapper, "_SHIPPED", {})
    monkeypatch.setattr(checkpoint, "default_policy", lambda arch: (None, "none shipped"))
    with pytest.raises(SpecError) as err:
        mapper.PolicyMapper().search(layer, arch, "edp", budget=1, seed=0)
    assert err.value.where == "--mapper policy" and "rlmap map --policy RUN" in err.value.message
