"""Surrogate cost models: backends, encoding, dataset files, training, the reward model, surrogate search.

Everything runs on tiny layers and a tiny dataset (a few hundred samples, 1-3 epochs) so the file takes
well under a minute.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rlmap.cli.surrogate import surrogate_app
from rlmap.model.costmodel import CostModel
from rlmap.search.mapspace import MapSpace
from rlmap.spec import io
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer
from rlmap.spec.mapping import MappingBatch
from rlmap.surrogate.data import (
    MAX_LEVELS,
    N_CONTEXT_FEATURES,
    N_MAPPING_FEATURES,
    BackendModel,
    BuiltinBackend,
    CallableBackend,
    Encoder,
    LayerJob,
    SampleSet,
    context_features,
    generate_layer_samples,
    generate_samples,
    load_backend,
    random_valid,
    structural_valid,
)
from rlmap.surrogate.model import SurrogateRewardModel, load_checkpoint, net_from_checkpoint, rankdata, spearman
from rlmap.surrogate.search import SurrogateMapper
from rlmap.surrogate.workflow import build_dataset, evaluate_surrogate, train_surrogate

ARCH = io.load_architecture("eyeriss")
SMALL = Layer(name="small", K=16, C=8, P=7, Q=7, R=3, S=3, padding=1)
SMALL2 = Layer(name="small2", kind="pointwise", K=24, C=16, P=14, Q=14)
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "surrogate_eyeriss" / "model.pt"


def _valid_batch(layer: Layer, n: int, seed: int = 0) -> MappingBatch:
    space = MapSpace(layer, ARCH)
    g, _ = random_valid(space, n, np.random.default_rng(seed))
    return space.decode(g)


class SlowBackend(CallableBackend):
    """The built-in model scoring ONE mapping per call through the scalar path, deliberately slowly."""

    def __init__(self, delay: float = 2e-4) -> None:
        self.models: dict[str, CostModel] = {}

        def fn(layer, arch, mapping):  # noqa: ANN001, ANN202
            time.sleep(delay)
            m = self.models.setdefault(layer.name, CostModel(layer, arch))
            c = m.evaluate(mapping)
            return (c.energy, c.cycles) if c.valid else None

        super().__init__(fn, name="slow-builtin")


# ----------------------------------------------------------------------------- encoding
def test_encoding_shapes_and_values() -> None:
    b = _valid_batch(SMALL, 50)
    enc = Encoder(SMALL, ARCH)
    x = enc(b)
    assert x.shape == (50, N_MAPPING_FEATURES) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert context_features(SMALL, ARCH).shape == (N_CONTEXT_FEATURES,)
    # the first block is log2 of every factor, [level, dim, temporal/X/Y], padded to MAX_LEVELS
    fac = x[:, : MAX_LEVELS * 8 * 3].reshape(50, MAX_LEVELS, 8, 3)
    np.testing.assert_allclose(np.exp2(fac[:, :3, :, 0]), b.temporal, rtol=1e-5)
    np.testing.assert_allclose(np.exp2(fac[:, :3, :, 1]), b.spatial_x, rtol=1e-5)
    np.testing.assert_allclose(np.exp2(fac[:, :3, :, 2]), b.spatial_y, rtol=1e-5)
    assert (fac[:, 3] == 0).all()  # padding level
    # batch-independent: encoding one mapping alone gives its row of the batch
    for i in (0, 17, 49):
        np.testing.assert_array_equal(enc(b.take(np.array([i])))[0], x[i])
    # chunked encoding equals one-shot encoding
    np.testing.assert_array_equal(enc.encode_fm(b, chunk=7), enc.encode_fm(b))


def test_encoding_invariant_to_factor_one_loop_positions() -> None:
    """Moving loops whose factor is 1 within a level's order changes nothing the cost model sees, nor the encoding."""
    b = _valid_batch(SMALL, 40, seed=3)
    rng = np.random.default_rng(0)
    order = b.order.copy()
    for i in range(len(b)):
        for lvl in range(ARCH.n_levels):
            ones = [k for k, d in enumerate(order[i, lvl]) if b.temporal[i, lvl, d] == 1]
            if len(ones) >= 2:
                perm = rng.permutation(ones)
                order[i, lvl, ones] = order[i, lvl, perm]
    shuffled = MappingBatch(b.temporal, b.spatial_x, b.spatial_y, order)
    assert (shuffled.order != b.order).any()
    enc = Encoder(SMALL, ARCH)
    np.testing.assert_array_equal(enc(shuffled), enc(b))
    m = CostModel(SMALL, ARCH)
    np.testing.assert_allclose(m.evaluate_batch(shuffled).edp, m.evaluate_batch(b).edp, rtol=1e-12)


def test_encoding_distinguishes_loop_orders_that_matter() -> None:
    b = _valid_batch(SMALL, 200, seed=5)
    enc = Encoder(SMALL, ARCH)
    m = CostModel(SMALL, ARCH)
    x = enc(b)
    edp = m.evaluate_batch(b).edp
    # mappings with equal features must have equal cost (the encoding loses nothing the model uses)
    _, first, inverse = np.unique(x, axis=0, return_index=True, return_inverse=True)
    np.testing.assert_allclose(edp, edp[first][inverse.reshape(-1)], rtol=1e-9)


# ----------------------------------------------------------------------------- backends
def test_slow_backend_gives_identical_costs() -> None:
    b = _valid_batch(SMALL, 60)
    ref = CostModel(SMALL, ARCH).evaluate_batch(b)
    slow = SlowBackend()
    e, c = slow.evaluate(SMALL, ARCH, b)
    assert slow.calls == 60
    np.testing.assert_allclose(e, ref.energy, rtol=1e-12)
    np.testing.assert_allclose(c, ref.cycles, rtol=1e-12)
    # through the CostModel adapter: invalid mappings never reach the backend
    space = MapSpace(SMALL, ARCH)
    raw = space.decode(space.random_genomes(200, np.random.default_rng(1)))
    ok = structural_valid(space.model, raw)
    truth = space.model.evaluate_batch(raw)
    np.testing.assert_array_equal(ok, truth.valid)
    bm = BackendModel(SMALL, ARCH, SlowBackend())
    got = bm.evaluate_batch(raw)
    assert bm.backend.calls == int(ok.sum())
    np.testing.assert_array_equal(got.valid, truth.valid)
    np.testing.assert_allclose(got.energy[ok], truth.energy[ok], rtol=1e-12)
    np.testing.assert_allclose(got.cycles[ok], truth.cycles[ok], rtol=1e-12)
    one = bm.evaluate(b[0])
    assert one.valid and one.edp == pytest.approx(ref.edp[0], rel=1e-12)


def test_load_backend_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(load_backend("builtin"), BuiltinBackend)
    (tmp_path / "my_cost_model.py").write_text(
        "from rlmap.model.costmodel import CostModel\n"
        "def score(layer, arch, mapping):\n"
        "    c = CostModel(layer, arch).evaluate(mapping)\n"
        "    return (c.energy, c.cycles) if c.valid else None\n"
        "def broken(layer, arch, mapping):\n"
        "    return 'nonsense'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    be = load_backend("my_cost_model:score")
    b = _valid_batch(SMALL, 5)
    e, c = be.evaluate(SMALL, ARCH, b)
    np.testing.assert_allclose(e * c, CostModel(SMALL, ARCH).evaluate_batch(b).edp, rtol=1e-12)
    with pytest.raises(SpecError, match="must return"):
        load_backend("my_cost_model:broken").evaluate(SMALL, ARCH, b)
    for bad in ("nomodule_xyz:fn", "rlmap.model.costmodel:nope", "no-colon"):
        with pytest.raises(SpecError):
            load_backend(bad)


def test_slow_backend_dataset_costs_match_builtin() -> None:
    slow = SlowBackend(delay=0.0)
    b, e, c, src, stats = generate_layer_samples(LayerJob(SMALL, ARCH, 60, seed=4, backend=slow))
    assert len(e) == 60 and stats["backend_calls"] == slow.calls
    ref = CostModel(SMALL, ARCH).evaluate_batch(b)
    assert ref.valid.all()
    np.testing.assert_allclose(e, ref.energy, rtol=1e-12)
    np.testing.assert_allclose(c, ref.cycles, rtol=1e-12)
    assert set(np.unique(src)) >= {0, 2}  # random and mapper-trajectory samples


def test_backend_calls_count_each_shard_once_with_a_shared_backend() -> None:
    """In-process shards share one backend object (as `rlmap surrogate dataset` passes it): the dataset's
    backend_calls is the sum of the shards' own counts, as on Ray or in worker processes, not a running total."""
    items = [(SMALL, ["toy"], ARCH), (SMALL2, ["toy"], ARCH), (SMALL, ["toy"], ARCH)]
    shared = BuiltinBackend()
    data = generate_samples(items, 20, seed=3, backend=shared)
    own = [
        generate_layer_samples(LayerJob(layer, arch, 20, 3 * 100_003 + i, BuiltinBackend()))[4]["backend_calls"]
        for i, (layer, _, arch) in enumerate(items)
    ]
    assert data.meta["backend_calls"] == sum(own) == shared.calls


# ----------------------------------------------------------------------------- dataset files
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    items = [
        (SMALL, ["toy"], ARCH),
        (SMALL2, ["toy"], ARCH),
        (Layer(name="g", kind="gemm", K=32, C=48, P=16), ["toy"], ARCH),
    ]
    data = generate_samples(items, 400, seed=0)
    return data.save(tmp_path_factory.mktemp("ds") / "dataset.npz")


def test_dataset_roundtrip_and_true_costs(tiny_data: Path) -> None:
    data = SampleSet.load(tiny_data)
    assert len(data) == 1200 and len(data.layers) == 3
    again = SampleSet.load(tiny_data.parent)
    np.testing.assert_array_equal(again.temporal, data.temporal)
    for li, ai, idx in data.groups():
        b = data.batch(idx)
        ref = CostModel(data.layers[li], data.archs[ai]).evaluate_batch(b)
        assert ref.valid.all()
        np.testing.assert_allclose(data.energy[idx], ref.energy, rtol=1e-12)
        np.testing.assert_allclose(data.cycles[idx], ref.cycles, rtol=1e-12)
    # the mapper-derived samples concentrate on the good end of the map space
    for _li, _, idx in data.groups():
        rand = data.edp[idx][data.source[idx] <= 1]
        good = data.edp[idx][data.source[idx] >= 2]
        assert np.median(good) < np.median(rand)


def test_build_dataset_user_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        build_dataset("eyeriss", [], 100, tmp_path)
    with pytest.raises(SpecError):
        build_dataset("no_such_arch", ["vgg16"], 100, tmp_path)
    with pytest.raises(SpecError):
        build_dataset("eyeriss", ["vgg16"], 0, tmp_path)
    with pytest.raises(SpecError):
        build_dataset("eyeriss", ["vgg16"], 100, tmp_path, exclude=["vgg16"])
    with pytest.raises(SpecError):
        SampleSet.load(tmp_path / "missing.npz")


# ----------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def tiny_model(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train_surrogate(tiny_data, out, epochs=1, batch_size=64, hidden=32, depth=2, val_frac=0.34, progress=False)
    return out


def test_training_reduces_loss_and_resumes(tiny_model: Path, tiny_data: Path) -> None:
    res = train_surrogate(tiny_data, tiny_model, epochs=3, resume=True, progress=False)
    hist = res.history
    assert [h["epoch"] for h in hist] == [1, 2, 3]  # the first epoch came from the first run
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert "val_loss" in hist[-1] and np.isfinite(hist[-1]["val_loss"])
    assert any(p.name.startswith("events.out.tfevents") for p in (tiny_model / "tb").iterdir())
    ck = load_checkpoint(tiny_model)
    assert ck["config"]["hidden"] == 32 and ck["meta"]["samples"] == 1200
    assert (tiny_model / "model.pt").stat().st_size < 5e6


def test_checkpoint_encoding_version_is_checked(tiny_model: Path, tmp_path: Path) -> None:
    ck = torch.load(tiny_model / "model.pt", weights_only=True)
    ck["encoding_version"] = -1
    torch.save(ck, tmp_path / "old.pt")
    with pytest.raises(SpecError, match="encoding version"):
        load_checkpoint(tmp_path / "old.pt")
    with pytest.raises(SpecError):
        load_checkpoint(tmp_path / "nothing.pt")
    with pytest.raises(SpecError):
        train_surrogate(tmp_path / "nothing.npz", tmp_path / "o", epochs=1, progress=False)


def test_reward_model_matches_the_network(tiny_model: Path) -> None:
    rm = SurrogateRewardModel(tiny_model)
    b = _valid_batch(SMALL, 30)
    y = rm.predict_log2(SMALL, ARCH, b)
    net = net_from_checkpoint(load_checkpoint(tiny_model))
    with torch.no_grad():
        ref = net(
            torch.from_numpy(np.ascontiguousarray(Encoder(SMALL, ARCH)(b))),
            torch.from_numpy(context_features(SMALL, ARCH))[None, :],
        ).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)  # folded fast path == plain forward
    edp = rm.predict_edp(SMALL, ARCH, b)
    e, c = rm.predict(SMALL, ARCH, b)
    assert edp.shape == (30,) and (edp > 0).all()
    np.testing.assert_allclose(edp, e * c, rtol=1e-5)
    # invalid mappings get inf only when asked
    space = MapSpace(SMALL, ARCH)
    raw = space.decode(space.random_genomes(100, np.random.default_rng(2)))
    ok = structural_valid(space.model, raw)
    masked = rm.predict_edp(SMALL, ARCH, raw, valid_only=True)
    assert np.isinf(masked[~ok]).all() and np.isfinite(masked[ok]).all()


def test_evaluate_refuses_training_networks(tiny_model: Path) -> None:
    with pytest.raises(SpecError):
        evaluate_surrogate(tiny_model, [], progress=False)


def test_rank_helpers() -> None:
    np.testing.assert_array_equal(rankdata(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1.0, 3.5, 2.0])
    assert spearman(np.arange(10.0), np.arange(10.0) ** 3) == pytest.approx(1.0)
    assert spearman(np.arange(10.0), -np.arange(10.0)) == pytest.approx(-1.0)


# ----------------------------------------------------------------------------- surrogate search
def test_surrogate_search_reports_true_costs_within_budget(tiny_model: Path) -> None:
    calls = SlowBackend(delay=0.0)
    model = BackendModel(SMALL, ARCH, calls)
    mapper = SurrogateMapper(checkpoint=tiny_model, islands=2, pool=256, population=32, generations=3)
    res = mapper.search(SMALL, ARCH, "edp", budget=40, seed=1, model=model)
    assert res.mapper == "surrogate" and res.evaluations <= 40
    # every true evaluation is counted: the backend saw the budget's evaluations plus the final re-score
    assert calls.calls == res.evaluations + 1
    truth = CostModel(SMALL, ARCH).evaluate(res.mapping)
    assert truth.valid
    assert res.cost.energy == pytest.approx(truth.energy, rel=1e-12)
    assert res.cost.cycles == pytest.approx(truth.cycles, rel=1e-12)
    assert res.best == pytest.approx(truth.edp, rel=1e-9)
    assert res.best == pytest.approx(float(np.min(res.curve)), rel=0)
    assert len(res.curve) == res.evaluations
    # other objectives work too, and the budget is respected exactly
    res2 = mapper.search(SMALL2, ARCH, "energy", budget=25, seed=2)
    assert res2.evaluations <= 25
    assert res2.cost.energy == pytest.approx(CostModel(SMALL2, ARCH).evaluate(res2.mapping).energy, rel=1e-12)


def test_surrogate_search_needs_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(SpecError):
        SurrogateMapper(checkpoint=tmp_path / "none.pt").search(SMALL, ARCH, "edp", 10)
    with pytest.raises(SpecError):
        SurrogateMapper(checkpoint=tmp_path / "none.pt").search(SMALL, ARCH, "edp", 0)


# ----------------------------------------------------------------------------- CLI and the shipped model
def test_cli_commands(tmp_path: Path, tiny_model: Path) -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    r = runner.invoke(
        surrogate_app,
        ["dataset", "--arch", "eyeriss", "--synthetic", "2", "--samples", "64", "-o", str(tmp_path / "d")],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d" / "dataset.npz").exists() and (tmp_path / "d" / "dataset.json").exists()
    r = runner.invoke(
        surrogate_app,
        [
            "train",
            "--data",
            str(tmp_path / "d"),
            "-o",
            str(tmp_path / "m"),
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--depth",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m" / "model.pt").exists() and (tmp_path / "m" / "last.pt").exists()
    r = runner.invoke(
        surrogate_app, ["dataset", "--arch", "eyeriss", "--samples", "0", "--synthetic", "1", "-o", str(tmp_path)]
    )
    assert isinstance(r.exception, SpecError)


def test_shipped_checkpoint() -> None:
    assert SHIPPED.exists(), "checkpoints/surrogate_eyeriss/model.pt is missing"
    assert SHIPPED.stat().st_size < 5e6
    assert (SHIPPED.parent / "MODEL_CARD.md").exists()
    rm = SurrogateRewardModel(SHIPPED)
    assert "eyeriss" in rm.trained_archs
    # it learned the cost model that rlmap computes today (same numbers on the fingerprint's mappings);
    # this fails when the model's formulas change: retrain the surrogate then (see its model card)
    assert not rm.costmodel_changed
    layer = io.load_network("resnet18").layers[4]
    b = _valid_batch(layer, 300, seed=9)
    true = np.log2(CostModel(layer, ARCH).evaluate_batch(b).edp)
    pred = np.log2(rm.predict_edp(layer, ARCH, b))
    assert spearman(pred, true) > 0.9


def test_costmodel_fingerprint_follows_numbers_not_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from rlmap.surrogate import data as surrogate_data

    base = surrogate_data.costmodel_fingerprint()
    assert len(base) == 12 and base == surrogate_data.costmodel_fingerprint()
    surrogate_data.costmodel_fingerprint.cache_clear()
    monkeypatch.setattr(
        CostModel,
        "mac_energy",
        property(lambda self: 0.0, lambda self, v: None),  # a formula change
        raising=False,
    )
    try:
        assert surrogate_data.costmodel_fingerprint() != base
    finally:
        surrogate_data.costmodel_fingerprint.cache_clear()


def test_surrogate_search_stops_at_its_time_limit(tiny_model: Path) -> None:
    """A slow cost model (2 ms a mapping) and a budget far beyond the limit: the search stops at the limit
    with the best true evaluation so far, and says so."""
    model = BackendModel(SMALL, ARCH, SlowBackend(delay=2e-3))
    mapper = SurrogateMapper(checkpoint=tiny_model, islands=2, pool=256, population=32, generations=3)
    t0 = time.perf_counter()
    res = mapper.search(SMALL, ARCH, "edp", budget=100_000, seed=1, model=model, time_limit=1.0)
    elapsed = time.perf_counter() - t0
    assert elapsed <= 1.0 + 1.5  # the round under way when the limit passes is finished
    assert 0 < res.evaluations < 100_000 and "time limit 1 s reached" in res.notes["stopped"]
    assert res.cost.valid and res.best == pytest.approx(res.cost.edp, rel=1e-9)
