"""rlmap.interop.pytorch: PyTorch modules -> Network, with dims and MACs checked by hand."""

from __future__ import annotations

import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rlmap.interop.pytorch import ImportResult, import_module, load_builder, parse_input_shape
from rlmap.spec.errors import SpecError
from rlmap.spec.layer import Layer


# ---------------------------------------------------------------- models
class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = nn.Conv2d(16, 32, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))
        x = F.relu(self.pw(self.dw(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class SelfAttention(nn.Module):
    """Single head (heads=1) or multi-head self-attention from nn.Linear + matmul."""

    def __init__(self, dim: int, heads: int = 1, fused_qkv: bool = False) -> None:
        super().__init__()
        self.heads, self.fused = heads, fused_qkv
        if fused_qkv:
            self.qkv = nn.Linear(dim, 3 * dim)
        else:
            self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, E = x.shape
        if self.fused:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        if self.heads > 1:
            q, k, v = (t.view(B, T, self.heads, E // self.heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / (q.shape[-1] ** 0.5)
        attn = torch.softmax(scores, dim=-1)
        y = torch.matmul(attn, v)
        if self.heads > 1:
            y = y.transpose(1, 2).reshape(B, T, E)
        return self.out(y)


def _imp(model: nn.Module, *shape: int, name: str = "net") -> ImportResult:
    return import_module(model.eval(), torch.zeros(shape), name)


def _flops(model: nn.Module, *shape: int) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(shape))
    return counter.get_total_flops()


def _dims(layer: Layer) -> dict:
    return dict(
        kind=layer.kind,
        N=layer.N,
        K=layer.K,
        C=layer.C,
        P=layer.P,
        Q=layer.Q,
        R=layer.R,
        S=layer.S,
        groups=layer.groups,
        stride=layer.stride,
        dilation=layer.dilation,
        padding=layer.padding,
    )


def _conv(
    kind: str,
    N: int,
    K: int,
    C: int,
    P: int,
    Q: int,
    R: int,
    S: int,
    groups: int = 1,
    stride=(1, 1),
    dilation=(1, 1),
    padding=(0, 0),
) -> dict:
    return dict(
        kind=kind, N=N, K=K, C=C, P=P, Q=Q, R=R, S=S, groups=groups, stride=stride, dilation=dilation, padding=padding
    )


def _mm(kind: str, K: int, C: int, P: int, groups: int = 1) -> dict:
    return _conv(kind, 1, K, C, P, 1, 1, 1, groups)


# ---------------------------------------------------------------- CNNs
def test_tiny_cnn_layers_dims_and_macs() -> None:
    res = _imp(TinyCNN(), 2, 3, 32, 32, name="tiny")
    net = res.network
    assert net.name == "tiny"
    assert [l.name for l in net.layers] == ["stem", "dw", "pw", "fc"]
    stem, dw, pw, fc = net.layers
    # stem: 3x3 stride 2 pad 1 on 32 -> floor((32 + 2 - 3) / 2) + 1 = 16
    assert _dims(stem) == _conv("conv", 2, 16, 3, 16, 16, 3, 3, stride=(2, 2), padding=(1, 1))
    assert stem.macs == 2 * 16 * 3 * 16 * 16 * 3 * 3 == 221_184
    # depthwise 3x3 pad 1 keeps 16x16; one input channel per group
    assert _dims(dw) == _conv("depthwise", 2, 16, 16, 16, 16, 3, 3, groups=16, padding=(1, 1))
    assert dw.macs == 2 * 16 * 1 * 16 * 16 * 3 * 3 == 73_728
    assert _dims(pw) == _conv("pointwise", 2, 32, 16, 16, 16, 1, 1)
    assert pw.macs == 2 * 32 * 16 * 16 * 16 == 262_144
    # Linear on (2, 32): 2 tokens -> P
    assert _dims(fc) == _mm("gemm", K=10, C=32, P=2)
    assert fc.macs == 2 * 32 * 10 == 640
    assert net.macs == 221_184 + 73_728 + 262_144 + 640
    assert 2 * net.macs == _flops(TinyCNN(), 2, 3, 32, 32)
    assert all(l.repeat == 1 for l in net.layers)


def test_tiny_cnn_skipped_ops_are_reported() -> None:
    skipped = _imp(TinyCNN(), 1, 3, 32, 32).skipped
    names = [n for n, _ in skipped]
    text = " ".join(d.lower() for _, d in skipped)
    for op in ("batchnorm2d", "relu", "adaptiveavgpool2d", "flatten"):
        assert op in text, op
    assert names.count("relu") + names.count("relu_1") == 2  # torch.relu and F.relu
    assert all("no macs" in d.lower() for _, d in skipped)
    assert not {"stem", "dw", "pw", "fc"} & set(names)


def test_dilated_and_asymmetric_convs() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dil = nn.Conv2d(4, 8, 3, dilation=2, padding=2)
            self.asym = nn.Conv2d(8, 8, (3, 5), stride=(2, 1), dilation=(1, 2), padding=(1, 4))
            self.valid = nn.Conv2d(8, 4, 3, stride=2, dilation=3, padding="valid")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.valid(self.asym(self.dil(x)))

    dil, asym, valid = _imp(Net(), 1, 4, 20, 20).network.layers
    # (20 + 2*2 - 2*(3-1) - 1) / 1 + 1 = 20
    assert _dims(dil) == _conv("conv", 1, 8, 4, 20, 20, 3, 3, dilation=(2, 2), padding=(2, 2))
    assert dil.macs == 8 * 4 * 20 * 20 * 9 == 115_200
    # rows: floor((20 + 2 - 1*2 - 1) / 2) + 1 = 10; cols: (20 + 8 - 2*4 - 1) / 1 + 1 = 20
    assert _dims(asym) == _conv("conv", 1, 8, 8, 10, 20, 3, 5, stride=(2, 1), dilation=(1, 2), padding=(1, 4))
    assert asym.macs == 8 * 8 * 10 * 20 * 3 * 5 == 192_000
    # 'valid' on 10x20, dilation 3 -> footprint 7: rows floor((10-7)/2)+1 = 2, cols floor((20-7)/2)+1 = 7
    assert _dims(valid) == _conv("conv", 1, 4, 8, 2, 7, 3, 3, stride=(2, 2), dilation=(3, 3))
    assert valid.macs == 4 * 8 * 2 * 7 * 9 == 4_032
    # rows/cols read: (P-1)*stride + (R-1)*dilation + 1 = (2-1)*2 + 2*3 + 1, (7-1)*2 + 2*3 + 1
    assert valid.input_hw == (9, 19)


def test_grouped_conv_and_same_padding() -> None:
    model = nn.Sequential(
        nn.Conv2d(8, 12, 3, padding=1, groups=2), nn.ReLU(), nn.Conv2d(12, 6, 3, padding="same", groups=3)
    )
    g2, g3 = _imp(model, 1, 8, 6, 6).network.layers
    assert (g2.name, g3.name) == ("_0", "_2")  # fx names Sequential children _0, _1, ...
    assert _dims(g2) == _conv("conv", 1, 12, 8, 6, 6, 3, 3, groups=2, padding=(1, 1))
    assert g2.macs == 12 * (8 // 2) * 6 * 6 * 9 == 15_552
    assert g2.problem_dims == (1, 2, 6, 4, 6, 6, 3, 3)  # N, G, K/G, C/G, P, Q, R, S
    assert _dims(g3) == _conv("conv", 1, 6, 12, 6, 6, 3, 3, groups=3, padding=(1, 1))
    assert g3.macs == 6 * (12 // 3) * 6 * 6 * 9 == 7_776
    assert 2 * (g2.macs + g3.macs) == _flops(model, 1, 8, 6, 6)


def test_conv1d_runs_along_p() -> None:
    model = nn.Sequential(nn.Conv1d(6, 10, 5, stride=2, padding=2), nn.Conv1d(10, 10, 3, groups=10, dilation=2))
    c, dw = _imp(model, 3, 6, 50).network.layers
    # floor((50 + 4 - 5) / 2) + 1 = 25
    assert _dims(c) == _conv("conv", 3, 10, 6, 25, 1, 5, 1, stride=(2, 1), padding=(2, 0))
    assert c.macs == 3 * 10 * 6 * 25 * 5 == 22_500
    # 25 - 2*(3-1) = 21
    assert _dims(dw) == _conv("depthwise", 3, 10, 10, 21, 1, 3, 1, groups=10, dilation=(2, 1))
    assert dw.macs == 3 * 10 * 21 * 3 == 1_890


def test_functional_conv_and_linear() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 2, 3, 3))
            self.lw = nn.Parameter(torch.randn(5, 8 * 4 * 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.conv2d(x, self.w, None, 2, 1, 1, 2)  # stride 2, padding 1, groups 2
            return F.linear(y.flatten(1), self.lw)

    conv, lin = _imp(Net(), 1, 4, 8, 8).network.layers
    assert (conv.name, lin.name) == ("conv2d", "linear")
    assert _dims(conv) == _conv("conv", 1, 8, 4, 4, 4, 3, 3, groups=2, stride=(2, 2), padding=(1, 1))
    assert conv.macs == 8 * 2 * 4 * 4 * 9 == 2_304
    assert _dims(lin) == _mm("gemm", K=5, C=128, P=1)


# ---------------------------------------------------------------- attention
def test_single_head_attention() -> None:
    E, B, T = 16, 2, 5
    res = _imp(SelfAttention(E), B, T, E)
    net = res.network
    assert [l.name for l in net.layers] == ["q", "k", "v", "matmul", "matmul_1", "out"]
    q, k, v, qk, av, out = net.layers
    for lin in (q, k, v, out):  # (2, 5, 16) @ W: B*T = 10 tokens on P
        assert _dims(lin) == _mm("gemm", K=16, C=16, P=10)
        assert lin.macs == 10 * 16 * 16 == 2_560
    # q @ k^T: (2,5,16) @ (2,16,5): batch 2 on groups, P = 5 rows, C = 2*16, K = 2*5
    assert _dims(qk) == _mm("matmul", K=2 * 5, C=2 * 16, P=5, groups=2)
    assert qk.macs == 2 * 5 * 5 * 16 == 800
    # attn @ v: (2,5,5) @ (2,5,16)
    assert _dims(av) == _mm("matmul", K=2 * 16, C=2 * 5, P=5, groups=2)
    assert av.macs == 2 * 5 * 16 * 5 == 800
    assert net.macs == 4 * 2_560 + 2 * 800
    assert 2 * net.macs == _flops(SelfAttention(E), B, T, E)
    text = " ".join(d.lower() for _, d in res.skipped)
    assert "softmax" in text and "transpose" in text and "truediv" in text


def test_multi_head_attention() -> None:
    E, H, T = 24, 4, 7  # head dim 6, batch 1
    res = _imp(SelfAttention(E, heads=H, fused_qkv=True), 1, T, E)
    qkv, qk, av, out = res.network.layers
    assert (qkv.name, qk.name, av.name, out.name) == ("qkv", "matmul", "matmul_1", "out")
    assert _dims(qkv) == _mm("gemm", K=3 * 24, C=24, P=7)
    assert qkv.macs == 7 * 24 * 72 == 12_096
    # (1,4,7,6) @ (1,4,6,7): groups = 1*4 heads
    assert _dims(qk) == _mm("matmul", K=4 * 7, C=4 * 6, P=7, groups=4)
    assert qk.macs == 4 * 7 * 7 * 6 == 1_176
    assert qk.problem_dims == (1, 4, 7, 6, 7, 1, 1, 1)
    # (1,4,7,7) @ (1,4,7,6)
    assert _dims(av) == _mm("matmul", K=4 * 6, C=4 * 7, P=7, groups=4)
    assert av.macs == 4 * 7 * 6 * 7 == 1_176
    assert _dims(out) == _mm("gemm", K=24, C=24, P=7)
    assert out.macs == 7 * 24 * 24 == 4_032
    assert 2 * res.network.macs == _flops(SelfAttention(E, heads=H, fused_qkv=True), 1, T, E)
    descs = [d.lower() for _, d in res.skipped]
    assert any(d.startswith("softmax") for d in descs)
    assert any(d.startswith(".chunk") for d in descs)


def test_matmul_operand_rules() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 3))
            self.a = nn.Parameter(torch.randn(4, 6))

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (2, 6, 8)
            y = x @ self.w  # weight operand -> gemm, batch folded into rows
            z = torch.bmm(x, x.transpose(1, 2))  # both activations, batched -> matmul, groups 2
            s = x[0] @ x[1].t()  # 2-D activations -> matmul, groups 1
            t = self.a @ x  # constant A, batched B -> transposed gemm
            v = x.matmul(x[0, 0])  # matrix-vector (tensor method)
            return y.sum() + z.sum() + s.sum() + t.sum() + v.sum()

    layers = {l.name: l for l in _imp(Net(), 2, 6, 8).network.layers}
    assert list(layers) == ["matmul", "bmm", "matmul_1", "matmul_2", "matmul_3"]
    assert _dims(layers["matmul"]) == _mm("gemm", K=3, C=8, P=2 * 6)
    assert _dims(layers["bmm"]) == _mm("matmul", K=2 * 6, C=2 * 8, P=6, groups=2)
    assert _dims(layers["matmul_1"]) == _mm("matmul", K=6, C=8, P=6)
    # (4,6) @ (2,6,8) -> O^T rows = 2*8, C = 6, K = 4
    assert _dims(layers["matmul_2"]) == _mm("gemm", K=4, C=6, P=2 * 8)
    assert layers["matmul_2"].macs == 2 * 4 * 6 * 8
    # (2,6,8) @ (8,) -> 12 rows, one column
    assert _dims(layers["matmul_3"]) == _mm("matmul", K=1, C=8, P=12)


def test_sdpa_and_nn_multihead_attention() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (3, 5, 16)
            y, _ = self.mha(x, x, x)
            h = y.view(3, 5, 2, 8).transpose(1, 2)
            return F.scaled_dot_product_attention(h, h, h)

    res = _imp(Net(), 3, 5, 16)
    layers = {l.name: l for l in res.network.layers}
    assert list(layers) == [
        "mha_in_proj",
        "mha_qk",
        "mha_av",
        "mha_out_proj",
        "scaled_dot_product_attention_qk",
        "scaled_dot_product_attention_av",
    ]
    assert _dims(layers["mha_in_proj"]) == _mm("gemm", K=48, C=16, P=15)
    assert _dims(layers["mha_out_proj"]) == _mm("gemm", K=16, C=16, P=15)
    for key in ("mha", "scaled_dot_product_attention"):  # 3 batches x 2 heads, 5 tokens, head dim 8
        assert _dims(layers[f"{key}_qk"]) == _mm("matmul", K=6 * 5, C=6 * 8, P=5, groups=6)
        assert _dims(layers[f"{key}_av"]) == _mm("matmul", K=6 * 8, C=6 * 5, P=5, groups=6)
    assert res.network.macs == 15 * 16 * 48 + 15 * 16 * 16 + 4 * (6 * 5 * 5 * 8)


def test_cross_attention_with_own_key_and_value_widths_counts_what_torch_counts() -> None:
    """Query, key and value of different lengths and widths (kdim, vdim; seq-first): three projections."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 2, kdim=8, vdim=12)

        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            return self.mha(q, k, v)[0]

    inputs = (torch.zeros(5, 3, 16), torch.zeros(7, 3, 8), torch.zeros(7, 3, 12))  # L=5, B=3, S=7
    res = import_module(Net().eval(), inputs, "net")
    macs = {l.name: l.macs for l in res.network.layers}
    assert macs == {
        "mha_q_proj": 15 * 16 * 16,
        "mha_k_proj": 21 * 8 * 16,
        "mha_v_proj": 21 * 12 * 16,
        "mha_qk": 6 * 5 * 7 * 8,
        "mha_av": 6 * 5 * 7 * 8,
        "mha_out_proj": 15 * 16 * 16,
    }
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        Net().eval()(*inputs)
    assert 2 * res.network.macs == counter.get_total_flops() == 2 * 17760


def test_unsupported_mac_ops_are_reported_as_unsupported() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
            self.fc = nn.Linear(16, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.einsum("bchw,bchw->bc", x, x)
            return self.fc(self.up(x).flatten(2)).sum() + y.sum()

    res = _imp(Net(), 1, 4, 2, 2)
    assert [l.name for l in res.network.layers] == ["fc"]
    skipped = dict(res.skipped)
    assert "unsupported" in skipped["up"] and "ConvTranspose2d" in skipped["up"]
    assert "unsupported" in skipped["einsum"]


# ---------------------------------------------------------------- errors
def test_data_dependent_control_flow_is_a_spec_error() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:
                return self.fc(x)
            return x

    with pytest.raises(SpecError, match="cannot trace Branchy with torch.fx"):
        _imp(Branchy(), 1, 4)


def test_no_mac_layer_and_bad_input_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="no MAC-carrying layer"):
        _imp(nn.Sequential(nn.ReLU(), nn.MaxPool2d(2)), 1, 3, 8, 8)
    with pytest.raises(SpecError, match=r"running Sequential on input \(1, 5, 8, 8\) failed"):
        _imp(nn.Sequential(nn.Conv2d(3, 4, 3)), 1, 5, 8, 8)


# ---------------------------------------------------------------- builder / shape parsing
def test_load_builder(tmp_path) -> None:
    src = tmp_path / "my_model.py"
    src.write_text(
        textwrap.dedent("""
        from torch import nn

        def build():
            return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    """)
    )
    builder = load_builder(f"{src}:build")
    net = import_module(builder().eval(), torch.zeros(parse_input_shape("1,3,8,8")), "user").network
    assert [(l.kind, l.macs) for l in net.layers] == [("conv", 8 * 3 * 8 * 8 * 9)]

    with pytest.raises(SpecError, match="no function 'nope'.*build"):
        load_builder(f"{src}:nope")
    with pytest.raises(SpecError, match="file not found"):
        load_builder(f"{tmp_path / 'missing.py'}:build")
    with pytest.raises(SpecError, match="expected 'path/to/model.py:function'"):
        load_builder(str(src))
    bad = tmp_path / "bad.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(SpecError, match="importing failed: RuntimeError: boom"):
        load_builder(f"{bad}:build")


def test_parse_input_shape() -> None:
    assert parse_input_shape("1,3,224,224") == (1, 3, 224, 224)
    assert parse_input_shape(" (1, 16) ") == (1, 16)
    assert parse_input_shape("1x3x8x8") == (1, 3, 8, 8)
    assert parse_input_shape("7") == (7,)
    for bad in ("", "1,,3", "1,a,3", "1,-3", "0,3", "1.5,2"):
        with pytest.raises(SpecError, match="bad input shape"):
            parse_input_shape(bad)
