"""The network zoo in envs/networks/: shapes checked against published MAC and parameter counts.

Tolerances.  Published figures are rounded (ResNet-50 "4.09 G", MobileNetV2 "300 M", MnasNet-A1 "312 M")
and papers differ on what they count (biases, batch-norm, SE blocks), so the MAC totals are compared
with a relative tolerance of 1%: that covers the rounding of a 3-significant-figure figure (<= 0.17%)
plus the SE blocks skipped in MnasNet-A1 (~0.25 MMACs, 0.08%), yet a single missing or mis-strided
mid-network conv moves every CNN total by more than 1% (the smallest stage-4 1x1 conv of ResNet-50 is
51 MMACs = 1.25%; a MobileNetV2 expansion conv at 14x14 is >= 3.6 MMACs ~ 1.2%).  Small layers a 1%
MAC tolerance cannot see (the FC layers, the stem) are caught by the weight-count check, by the
pinned exact totals, and by the per-network layer counts.  Transformer totals are exact closed forms.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rlmap.spec.io import dump_model, envs_dir, list_networks, load_network, parse_model
from rlmap.spec.layer import Layer, Network

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "envs" / "make_networks.py"
NETWORKS = ["bert_base", "gpt2_small", "mnasnet", "mobilenetv2", "resnet18", "resnet50", "resnet50_sparse", "vgg16"]
CNNS = ["mnasnet", "mobilenetv2", "resnet18", "resnet50", "resnet50_sparse", "vgg16"]


@pytest.fixture(scope="module")
def zoo() -> dict[str, Network]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RLMAP_ENVS", raising=False)  # always test the committed presets beside the package
        assert envs_dir() == REPO / "envs"
        return {name: load_network(name) for name in list_networks()}


@pytest.fixture(scope="module")
def make_networks():
    spec = importlib.util.spec_from_file_location("make_networks", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def weights(net: Network, kinds: tuple[str, ...] = ("conv", "depthwise", "pointwise", "gemm")) -> int:
    return sum(layer.tensor_sizes["weights"] * layer.repeat for layer in net.layers if layer.kind in kinds)


def test_every_preset_is_listed(zoo):
    assert sorted(zoo) == NETWORKS
    for name, net in zoo.items():
        assert net.name == name
        assert net.description and net.source


# Published MACs (multiply-accumulates, batch 1, 224x224).  Sources: ResNet-18/50 and VGG-16 as listed for
# torchvision.models ("GFLOPS" there = GMACs: 1.81, 4.09, 15.47); MobileNetV2 paper Table 4 (300 M MAdds);
# MnasNet paper Table 1, MnasNet-A1 (312 M MAdds, including its SE blocks, which this preset skips).
PUBLISHED_MACS = {
    "resnet18": 1.81e9,
    "resnet50": 4.09e9,
    "resnet50_sparse": 4.09e9,  # dense MACs: same shapes as resnet50
    "vgg16": 15.47e9,
    "mobilenetv2": 300e6,
    "mnasnet": 312e6,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_MACS))
def test_macs_match_published(zoo, name):
    assert zoo[name].macs == pytest.approx(PUBLISHED_MACS[name], rel=0.01)


# Exact totals of the committed presets, pinned so any change to a shape is noticed; each agrees with
# the published figure above (e.g. ResNet-50 4,089,184,256 is the usual conv+FC count behind "4.09 G").
PINNED_MACS = {
    "resnet18": 1_814_073_344,
    "resnet50": 4_089_184_256,
    "resnet50_sparse": 4_089_184_256,
    "vgg16": 15_470_264_320,
    "mobilenetv2": 300_774_272,
    "mnasnet": 311_325_344,
    "bert_base": 48_318_382_080,
    "gpt2_small": 106_300_440_576,
}


@pytest.mark.parametrize("name", NETWORKS)
def test_pinned_macs(zoo, name):
    assert zoo[name].macs == PINNED_MACS[name]


def _transformer_layer_macs(seq: int, d: int, ffn: int) -> int:
    # Q, K, V, output projections + QK^T and attention*V (all heads together) + the two FFN GEMMs
    return 4 * seq * d * d + 2 * seq * seq * d + 2 * seq * d * ffn


def test_bert_base_macs_by_hand(zoo):
    net = zoo["bert_base"]
    per_layer = 4 * 512 * 768 * 768 + 2 * 512 * 512 * 768 + 2 * 512 * 768 * 3072
    assert per_layer == _transformer_layer_macs(512, 768, 3072) == 4_026_531_840
    assert net.macs == 12 * per_layer
    assert all(layer.repeat == 12 for layer in net.layers)


def test_gpt2_small_macs_by_hand(zoo):
    net = zoo["gpt2_small"]
    per_block = 4 * 1024 * 768 * 768 + 2 * 1024 * 1024 * 768 + 2 * 1024 * 768 * 3072  # seq 1024
    assert per_block == _transformer_layer_macs(1024, 768, 3072)
    assert net.macs == 12 * per_block
    assert all(layer.repeat == 12 for layer in net.layers)


@pytest.mark.parametrize("name, seq", [("bert_base", 512), ("gpt2_small", 1024)])
def test_attention_matmuls(zoo, name, seq):
    net = zoo[name]
    scores, context = net.layer("attn_scores"), net.layer("attn_context")
    assert (scores.kind, scores.groups, scores.K, scores.C, scores.P) == ("matmul", 12, 12 * seq, 12 * 64, seq)
    assert (context.kind, context.groups, context.K, context.C, context.P) == ("matmul", 12, 12 * 64, 12 * seq, seq)
    assert scores.problem_dims == (1, 12, seq, 64, seq, 1, 1, 1)  # per head: seq x 64 @ 64 x seq
    assert context.problem_dims == (1, 12, 64, seq, seq, 1, 1, 1)  # per head: seq x seq @ seq x 64
    for layer in net.layers:
        assert layer.kind in ("gemm", "matmul") and layer.P == seq and layer.Q == 1


# Published parameter counts: torchvision (ResNet-18 11,689,512; ResNet-50 25,557,032; VGG-16 138,357,544;
# MobileNetV2 3,504,872), MnasNet paper (A1 3.9 M, 2 s.f.).  The presets hold conv/FC weights only, so the
# published counts also include biases and batch-norm (<= 1.0%, MobileNetV2's 34k BN parameters being the
# largest share) -- hence 1.5%.  MnasNet-A1 also gets its skipped SE weights added back (computed below).
MNASNET_SE_WEIGHTS = sum(
    2 * expanded * reduced
    for expanded, reduced in [
        (72, 6),
        (120, 10),
        (120, 10),  # 40-channel stage: expansion 3, SE reduce = int(0.25 * block input)
        (480, 20),
        (672, 28),  # 112-channel stage
        (672, 28),
        (960, 40),
        (960, 40),  # 160-channel stage
    ]
)
PUBLISHED_PARAMS = {
    "resnet18": (11_689_512, 0),
    "resnet50": (25_557_032, 0),
    "resnet50_sparse": (25_557_032, 0),
    "vgg16": (138_357_544, 0),
    "mobilenetv2": (3_504_872, 0),
    "mnasnet": (3.9e6, MNASNET_SE_WEIGHTS),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_weight_counts_match_published(zoo, name):
    published, skipped = PUBLISHED_PARAMS[name]
    assert weights(zoo[name]) + skipped == pytest.approx(published, rel=0.015)


@pytest.mark.parametrize(
    "name, embeddings, published",
    [
        # BERT-base: 110 M = layers + token/position/segment embeddings + pooler (768x768)
        ("bert_base", (30522 + 512 + 2) * 768 + 768 * 768, 110e6),
        # GPT-2 small: 124 M = blocks + token/position embeddings (the LM head is tied to the token embedding)
        ("gpt2_small", (50257 + 1024) * 768, 124e6),
    ],
)
def test_transformer_parameter_counts(zoo, name, embeddings, published):
    projections = weights(zoo[name], kinds=("gemm",))
    assert projections == 12 * 12 * 768 * 768  # 4 d^2 attention + 8 d^2 FFN, 12 layers
    assert projections + embeddings == pytest.approx(published, rel=0.01)  # rounded to 3 s.f.; biases, LN


# (layer entries, layers counting repeats): 53 convs + FC for ResNet-50, 20 + FC for ResNet-18, ...
LAYER_COUNTS = {
    "resnet18": (15, 21),
    "resnet50": (53, 54),
    "resnet50_sparse": (53, 54),
    "vgg16": (12, 16),
    "mobilenetv2": (53, 53),
    "mnasnet": (50, 50),
    "bert_base": (8, 96),
    "gpt2_small": (6, 72),
}


@pytest.mark.parametrize("name", NETWORKS)
def test_layer_counts(zoo, name):
    net = zoo[name]
    assert (len(net.layers), sum(layer.repeat for layer in net.layers)) == LAYER_COUNTS[name]


@pytest.mark.parametrize("name", CNNS)
def test_cnn_conventions(zoo, name):
    net = zoo[name]
    first, last = net.layers[0], net.layers[-1]
    # 224x224 RGB input: VGG's stem keeps 224, every other net's stem has stride 2
    assert (first.C, first.P, first.stride) == ((3, 224, (1, 1)) if name == "vgg16" else (3, 112, (2, 2)))
    assert (last.kind, last.K, last.P, last.Q) == ("gemm", 1000, 1, 1)  # ImageNet classifier
    for layer in net.layers:
        assert layer.N == 1
        if layer.kind == "depthwise":
            assert layer.groups == layer.C == layer.K
        if layer.kind == "pointwise":
            assert (layer.R, layer.S, layer.groups) == (1, 1, 1)
        if layer.kind == "conv":
            assert layer.R > 1 and layer.groups == 1
            assert layer.padding == ((layer.R - 1) // 2,) * 2  # "same" padding, PyTorch style
        if layer.kind == "gemm":
            assert (layer.P, layer.Q, layer.R, layer.S) == (1, 1, 1, 1)


def _out_size(in_size: int, layer: Layer) -> int:
    return (in_size + 2 * layer.padding[0] - layer.dilation[0] * (layer.R - 1) - 1) // layer.stride[0] + 1


@pytest.mark.parametrize("name", ["mobilenetv2", "mnasnet"])
def test_inverted_residual_chains(zoo, name):
    """Channels and spatial sizes flow layer to layer (no pooling before the classifier in these nets)."""
    convs = [layer for layer in zoo[name].layers if layer.kind != "gemm"]
    for prev, nxt in zip(convs, convs[1:]):
        assert nxt.C == prev.K, (prev.name, nxt.name)
        assert nxt.P == _out_size(prev.P, nxt), (prev.name, nxt.name)
    assert convs[-1].P == 7 and zoo[name].layers[-1].C == convs[-1].K == 1280


def test_mnasnet_is_irregular(zoo):
    dws = [layer for layer in zoo["mnasnet"].layers if layer.kind == "depthwise"]
    assert {layer.R for layer in dws} == {3, 5}
    assert {layer.R for layer in zoo["mobilenetv2"].layers if layer.kind == "depthwise"} == {3}
    assert "SE" in zoo["mnasnet"].description or "squeeze" in zoo["mnasnet"].description


def test_resnet_downsamples(zoo):
    for name, expected in [("resnet18", 3), ("resnet50", 4)]:
        # a run name `first..last` ends with its last layer's name (resnet50 merges layer1.0.conv3 with
        # the identical layer1.0.downsample)
        ds = [layer for layer in zoo[name].layers if layer.name.endswith("downsample")]
        assert len(ds) == expected
        assert all(layer.kind == "pointwise" for layer in ds)


def test_resnet50_sparse_has_resnet50_shapes(zoo):
    dense, sparse = zoo["resnet50"], zoo["resnet50_sparse"]
    assert [layer.model_copy(update={"density": dense.layers[0].density}) for layer in sparse.layers] == dense.layers
    assert all(layer.density.is_dense for layer in dense.layers)
    first, *middle, fc = sparse.layers
    assert first.density.is_dense  # first conv: dense weights, the image is dense
    assert fc.density.weights == 0.2 and fc.density.inputs == 1.0  # pooled vector is (taken as) dense
    for layer in middle:
        assert 0.2 <= layer.density.weights <= 0.35
        assert 0.4 <= layer.density.inputs <= 0.6
        assert layer.density.outputs == 1.0
    # the claimed ~80% global weight sparsity
    nonzero = sum(layer.tensor_sizes["weights"] * layer.repeat * layer.density.weights for layer in sparse.layers)
    assert 1 - nonzero / weights(sparse) == pytest.approx(0.80, abs=0.01)


@pytest.mark.parametrize("name", NETWORKS)
def test_yaml_round_trip(zoo, name):
    net = zoo[name]
    assert parse_model(Network, dump_model(net), name) == net


def test_committed_files_match_generator(make_networks, tmp_path):
    paths = make_networks.write_networks(tmp_path)
    committed = REPO / "envs" / "networks"
    assert sorted(p.name for p in paths) == sorted(p.name for p in committed.glob("*.yaml"))
    for path in paths:
        assert load_network(str(path)) == load_network(str(committed / path.name)), path.name
