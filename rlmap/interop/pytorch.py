"""Import a PyTorch model as a `Network`: trace it with torch.fx, propagate shapes, keep the MAC layers.

What becomes a layer (one per call, nothing merged, repeat = 1; named after the fx node):

* ``nn.Conv2d`` / ``F.conv2d``: P, Q are the *actual* output sizes from shape propagation, so string
  paddings ('same', 'valid') work.  Kind: ``depthwise`` if groups == in_channels > 1, ``pointwise`` for
  a 1x1 kernel with groups 1, else ``conv``.  'same' padding is recorded as the left (top) padding
  torch applies, ``dilation * (k - 1) // 2``; it is exact for odd kernels.
* ``nn.Conv1d`` / ``F.conv1d``: the sequence runs along **P** (Q = S = 1): P = output length,
  R = kernel size, stride/dilation/padding = (value, 1/1/0).  Tokens live on P everywhere in rlmap
  (Linear and matmul do the same), so a 1x1 Conv1d and the equivalent Linear give the same layer dims
  (N = batch here, folded into P for Linear).
* ``nn.Linear`` / ``F.linear`` on input (..., in): gemm with P = product of the leading dims (tokens,
  batch included), C = in_features, K = out_features, N = Q = 1.
* ``torch.matmul`` / ``@`` / ``torch.bmm`` / ``torch.mm`` (functions or tensor methods) and
  ``torch.addmm`` / ``torch.baddbmm``: A[..., M, Kin] @ B[..., Kin, Ncol], 1-D operands promoted as torch does.
    - B has no batch (or only size-1 batch dims): A's batch folds into the rows, P = batch * M,
      C = Kin, K = Ncol, groups = 1.  Kind ``gemm`` when B does not depend on the model inputs
      (a parameter, buffer or constant), else ``matmul``.
    - A has no batch but B has: written transposed (O^T = B^T A^T) so the shared operand stays shared:
      P = batch * Ncol, C = Kin, K = M; ``gemm`` when A is constant, else ``matmul``.
    - both batched: ``matmul`` with groups = product of the broadcast batch dims, P = M,
      C = groups * Kin, K = groups * Ncol (attention's q @ k^T and attn @ v).
* ``F.scaled_dot_product_attention``: two matmul layers, ``<node>_qk`` and ``<node>_av``.
* ``nn.MultiheadAttention``: its projections and the two attention matmuls, ``<node>_in_proj``
  (one gemm with K = 3E when query, key and value are the same tensor, else ``_q_proj``, ``_k_proj``,
  ``_v_proj``), ``<node>_qk``, ``<node>_av``, ``<node>_out_proj``.

Every other call (activations, elementwise arithmetic, pooling, normalisation, softmax, reshapes,
getitem, ...) is listed in `ImportResult.skipped` with a short reason; calls that do carry MACs but
are not understood (ConvTranspose, Conv3d, RNNs, einsum, torch.nn leaf modules such as
TransformerEncoderLayer that fx does not trace into) are listed there as "unsupported".
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import math
import operator
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from rlmap.spec.errors import SpecError, pydantic_message
from rlmap.spec.layer import Layer, Network

__all__ = ["ImportResult", "import_module", "load_builder", "parse_input_shape"]


@dataclass
class ImportResult:
    network: Network
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(fx node name, "op: reason") for every call that did not become a layer."""


# ---------------------------------------------------------------- op tables
_MATMUL_FUNCS: dict[Any, str] = {
    torch.matmul: "matmul",
    operator.matmul: "matmul",
    torch.bmm: "bmm",
    torch.mm: "mm",
}
_MATMUL_METHODS = {"matmul", "bmm", "mm", "__matmul__"}
_ADD_MATMUL_FUNCS: dict[Any, str] = {torch.addmm: "addmm", torch.baddbmm: "baddbmm"}
_ADD_MATMUL_METHODS = {"addmm", "baddbmm"}

# Modules / functions that carry MACs but are not imported: reported as unsupported, not as "no MACs".
_UNSUPPORTED_MAC_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Bilinear,
    nn.RNNBase,
    nn.RNNCellBase,
    nn.Transformer,
    nn.TransformerEncoder,
    nn.TransformerDecoder,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
)
_UNSUPPORTED_MAC_FUNCS = {
    "einsum",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "bilinear",
    "tensordot",
    "chain_matmul",
    "multi_dot",
    "baddbmm_",
    "addbmm",
    "addmv",
    "mv",
    "dot",
    "inner",
    "outer",
    "kron",
    "multi_head_attention_forward",
}


def _conv_sig(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):  # noqa: ANN001, ANN202
    """Argument layout of F.conv1d / F.conv2d, used to bind fx call arguments."""


def _linear_sig(input, weight, bias=None):  # noqa: ANN001, ANN202
    """Argument layout of F.linear."""


def _sdpa_sig(query, key, value, *args, **kwargs):  # noqa: ANN001, ANN202
    """Argument layout of F.scaled_dot_product_attention (only q, k, v matter)."""


def _mha_sig(query, key, value, *args, **kwargs):  # noqa: ANN001, ANN202
    """Argument layout of nn.MultiheadAttention.forward (only q, k, v matter)."""


def _bind(sig_fn: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    bound = inspect.signature(sig_fn).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


# ---------------------------------------------------------------- helpers
def _shape(node: Any) -> tuple[int, ...]:
    """Shape of an fx node's value, as recorded by ShapeProp."""
    import torch.fx

    if not isinstance(node, torch.fx.Node):
        if isinstance(node, torch.Tensor):
            return tuple(node.shape)
        raise _Unsupported(f"operand is a {type(node).__name__}, not a tensor")
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise _Unsupported(f"no tensor shape recorded for {node.name!r}")
    return tuple(int(d) for d in meta.shape)


def _prod(xs: Any) -> int:
    return int(math.prod(int(x) for x in xs))


def _pair(value: Any, n: int = 2) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    t = tuple(int(v) for v in value)
    return t * n if len(t) == 1 else t


class _Unsupported(Exception):
    """A MAC-carrying call whose arguments the importer cannot turn into a layer."""


@dataclass
class _Proto:
    """A layer before naming and validation."""

    suffix: str  # appended to the node name ("" for one layer per node)
    fields: dict[str, Any]


def _conv_protos(
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: int,
    spatial: int,
) -> list[_Proto]:
    """Conv1d / Conv2d from shapes; `weight_shape` = (K, C/groups, *kernel)."""
    K, c_per_group = int(weight_shape[0]), int(weight_shape[1])
    kernel = tuple(int(k) for k in weight_shape[2:])
    C = c_per_group * groups
    if len(in_shape) == spatial + 2:
        N = int(in_shape[0])
    elif len(in_shape) == spatial + 1:  # unbatched input
        N = 1
    else:
        raise _Unsupported(f"conv{spatial}d input of rank {len(in_shape)}")
    out_sp = tuple(int(d) for d in out_shape[-spatial:])
    stride_t, dilation_t = _pair(stride, spatial), _pair(dilation, spatial)
    if isinstance(padding, str):
        if padding == "valid":
            pad_t = (0,) * spatial
        elif padding == "same":  # torch pads dilation*(k-1) in total, the smaller half first
            pad_t = tuple(d * (k - 1) // 2 for d, k in zip(dilation_t, kernel))
        else:
            raise _Unsupported(f"padding={padding!r}")
    else:
        pad_t = _pair(padding, spatial)
    if spatial == 1:  # the sequence runs along P
        out_sp, kernel = (out_sp[0], 1), (kernel[0], 1)
        stride_t, dilation_t, pad_t = (stride_t[0], 1), (dilation_t[0], 1), (pad_t[0], 0)
    if groups == C and groups > 1:
        kind = "depthwise"
    elif kernel == (1, 1) and groups == 1:
        kind = "pointwise"
    else:
        kind = "conv"
    return [
        _Proto(
            "",
            dict(
                kind=kind,
                N=N,
                K=K,
                C=C,
                P=out_sp[0],
                Q=out_sp[1],
                R=kernel[0],
                S=kernel[1],
                groups=groups,
                stride=stride_t,
                dilation=dilation_t,
                padding=pad_t,
            ),
        )
    ]


def _gemm_proto(rows: int, c: int, k: int, kind: str = "gemm", suffix: str = "") -> _Proto:
    return _Proto(suffix, dict(kind=kind, N=1, K=k, C=c, P=rows, Q=1))


def _linear_protos(in_shape: tuple[int, ...], out_features: int) -> list[_Proto]:
    if not in_shape:
        raise _Unsupported("linear on a 0-d tensor")
    return [_gemm_proto(_prod(in_shape[:-1]), int(in_shape[-1]), int(out_features))]


def _matmul_protos(
    a: tuple[int, ...], b: tuple[int, ...], a_const: bool, b_const: bool, suffix: str = ""
) -> list[_Proto]:
    """A[..., M, Kin] @ B[..., Kin, Ncol] as one layer (see the module docstring for the rules)."""
    if not a or not b:
        raise _Unsupported("matmul with a 0-d operand")
    if len(a) == 1:
        a = (1, a[0])
    if len(b) == 1:
        b = (b[0], 1)
    (M, kin), (kin_b, ncol) = a[-2:], b[-2:]
    if kin != kin_b:
        raise _Unsupported(f"inner dims differ ({kin} vs {kin_b})")
    a_batch, b_batch = a[:-2], b[:-2]
    batch = _prod(torch.broadcast_shapes(torch.Size(a_batch), torch.Size(b_batch)))
    if _prod(b_batch) == 1:  # B shared by every row of A
        return [_gemm_proto(batch * M, kin, ncol, "gemm" if b_const else "matmul", suffix)]
    if _prod(a_batch) == 1:  # A shared: O^T = B^T A^T
        return [_gemm_proto(batch * ncol, kin, M, "gemm" if a_const else "matmul", suffix)]
    return [_Proto(suffix, dict(kind="matmul", N=1, groups=batch, K=batch * ncol, C=batch * kin, P=M, Q=1))]


def _attention_protos(q: tuple[int, ...], k: tuple[int, ...], v: tuple[int, ...]) -> list[_Proto]:
    """softmax(q k^T) v on (..., L, E), (..., S, E), (..., S, Ev): the two matmuls."""
    kt = (*k[:-2], k[-1], k[-2])
    attn = (*torch.broadcast_shapes(torch.Size(q[:-2]), torch.Size(k[:-2])), q[-2], k[-2])
    return _matmul_protos(q, kt, False, False, "_qk") + _matmul_protos(attn, v, False, False, "_av")


def _mha_protos(mod: nn.MultiheadAttention, q_node: Any, k_node: Any, v_node: Any) -> list[_Proto]:
    # value's shape adds nothing: its length is the key's (S) and its width is mod.vdim
    q, k = _shape(q_node), _shape(k_node)
    E, H = mod.embed_dim, mod.num_heads
    if len(q) == 3:
        if mod.batch_first:
            (B, L), S = q[:2], k[1]
        else:
            (L, B), S = q[:2], k[0]
    elif len(q) == 2:
        B, L, S = 1, q[0], k[0]
    else:
        raise _Unsupported(f"MultiheadAttention query of rank {len(q)}")
    hd = E // H
    protos: list[_Proto] = []
    if q_node is k_node is v_node and mod._qkv_same_embed_dim:
        protos.append(_gemm_proto(B * L, E, 3 * E, suffix="_in_proj"))
    else:
        protos += [
            _gemm_proto(B * L, E, E, suffix="_q_proj"),
            _gemm_proto(B * S, mod.kdim, E, suffix="_k_proj"),
            _gemm_proto(B * S, mod.vdim, E, suffix="_v_proj"),
        ]
    protos += _attention_protos((B, H, L, hd), (B, H, S, hd), (B, H, S, hd))
    protos.append(_gemm_proto(B * L, E, E, suffix="_out_proj"))
    return protos


# ---------------------------------------------------------------- per-node dispatch
def _describe(node: Any, gm: Any) -> str:
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)).__name__
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return f".{node.target}()"


def _op_name(node: Any) -> str:
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return str(node.target)


def _node_protos(node: Any, gm: Any, depends_on_input: set[str]) -> list[_Proto] | None:
    """The layers one fx node becomes, or None when it carries no MACs the importer understands.

    Raises _Unsupported for a MAC-carrying call it cannot import.
    """
    import torch.fx

    def const(x: Any) -> bool:
        return not (isinstance(x, torch.fx.Node) and x.name in depends_on_input)

    args, kwargs = node.args, node.kwargs
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        if isinstance(mod, (nn.Conv1d, nn.Conv2d)) and not isinstance(mod, nn.modules.conv._ConvTransposeNd):
            spatial = 1 if isinstance(mod, nn.Conv1d) else 2
            return _conv_protos(
                _shape(args[0] if args else kwargs["input"]),
                _shape(node),
                tuple(mod.weight.shape),
                mod.stride,
                mod.padding,
                mod.dilation,
                mod.groups,
                spatial,
            )
        if isinstance(mod, nn.Linear):
            return _linear_protos(_shape(args[0] if args else kwargs["input"]), mod.out_features)
        if isinstance(mod, nn.MultiheadAttention):
            b = _bind(_mha_sig, args, kwargs)
            return _mha_protos(mod, b["query"], b["key"], b["value"])
        if isinstance(mod, _UNSUPPORTED_MAC_MODULES):
            raise _Unsupported("carries MACs but is not supported by the importer")
        return None

    name = _op_name(node)
    if node.op == "call_function":
        target = node.target
        if target in _MATMUL_FUNCS:
            a = args[0] if args else kwargs["input"]
            b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
            return _matmul_protos(_shape(a), _shape(b), const(a), const(b))
        if target in _ADD_MATMUL_FUNCS:
            b = dict(zip(("input", "mat1", "mat2"), args)) | dict(kwargs)
            m1, m2 = b.get("mat1", b.get("batch1")), b.get("mat2", b.get("batch2"))
            return _matmul_protos(_shape(m1), _shape(m2), const(m1), const(m2))
        if target in (F.conv1d, F.conv2d, torch.conv1d, torch.conv2d):
            b = _bind(_conv_sig, args, kwargs)
            spatial = 1 if target in (F.conv1d, torch.conv1d) else 2
            return _conv_protos(
                _shape(b["input"]),
                _shape(node),
                _shape(b["weight"]),
                b["stride"],
                b["padding"],
                b["dilation"],
                int(b["groups"]),
                spatial,
            )
        if target is F.linear:
            b = _bind(_linear_sig, args, kwargs)
            return _linear_protos(_shape(b["input"]), _shape(b["weight"])[0])
        if target is F.scaled_dot_product_attention:
            b = _bind(_sdpa_sig, args, kwargs)
            return _attention_protos(_shape(b["query"]), _shape(b["key"]), _shape(b["value"]))
    elif node.op == "call_method":
        if name in _MATMUL_METHODS:
            a = args[0]
            b = args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
            return _matmul_protos(_shape(a), _shape(b), const(a), const(b))
        if name in _ADD_MATMUL_METHODS:
            m1, m2 = (args[1], args[2]) if len(args) > 2 else tuple(kwargs.values())[:2]
            return _matmul_protos(_shape(m1), _shape(m2), const(m1), const(m2))
    if name in _UNSUPPORTED_MAC_FUNCS:
        raise _Unsupported("carries MACs but is not supported by the importer")
    return None


def _no_mac_reason(node: Any, gm: Any) -> str:
    if node.op == "call_module":
        mod = gm.get_submodule(node.target)
        if mod.__class__.__module__.startswith("torch.nn"):
            return "no MACs"
        return "opaque module, not traced into"  # a custom leaf: not expected with the default tracer
    return "no MACs"


# ---------------------------------------------------------------- public API
def _sanitize(name: str) -> str:
    """fx node names are already identifiers; keep them as-is (so they match `skipped`) unless odd."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "layer"


def import_module(module: nn.Module, example_input: torch.Tensor | tuple, name: str) -> ImportResult:
    """Trace `module` on `example_input` and return its MAC-carrying layers as a Network.

    Raises SpecError if the model cannot be traced by torch.fx (e.g. data-dependent control flow),
    if running it on the example input fails, or if it contains no conv / linear / matmul.
    """
    import torch.fx
    from torch.fx.passes.shape_prop import ShapeProp

    if not name:
        raise SpecError("network name must not be empty")
    label = type(module).__name__
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    try:
        gm = torch.fx.symbolic_trace(module)
    except Exception as exc:  # fx raises TraceError, TypeError, NotImplementedError, ... on untraceable code
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(
            f"cannot trace {label} with torch.fx ({type(exc).__name__}: {msg}); the importer needs a "
            "forward() without data-dependent control flow",
            where=name,
        ) from exc
    shapes = ", ".join(str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__ for x in inputs)
    try:
        # ShapeProp prints the failing node's traceback itself; the user gets the cause in one line instead
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(gm).propagate(*inputs)
    except Exception as exc:
        cause: BaseException = exc
        while cause.__cause__ is not None:  # ShapeProp wraps the real error (e.g. a shape mismatch)
            cause = cause.__cause__
        text = str(cause).strip()
        msg = text.splitlines()[0] if text else type(cause).__name__
        raise SpecError(f"running {label} on input {shapes} failed: {msg}", where=name) from exc

    depends_on_input: set[str] = set()
    for node in gm.graph.nodes:
        if node.op == "placeholder" or any(a.name in depends_on_input for a in node.all_input_nodes):
            depends_on_input.add(node.name)

    layers: list[Layer] = []
    skipped: list[tuple[str, str]] = []
    used: set[str] = set()
    for node in gm.graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        op = _describe(node, gm)
        try:
            protos = _node_protos(node, gm, depends_on_input)
        except (_Unsupported, KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            reason = str(exc) if isinstance(exc, _Unsupported) else f"unsupported arguments ({exc})"
            skipped.append((node.name, f"{op}: unsupported, {reason}"))
            continue
        if protos is None:
            skipped.append((node.name, f"{op}: {_no_mac_reason(node, gm)}"))
            continue
        for proto in protos:
            base = _sanitize(node.name + proto.suffix)
            lname, i = base, 1
            while lname in used:
                lname, i = f"{base}_{i}", i + 1
            used.add(lname)
            try:
                layers.append(Layer(name=lname, **proto.fields))
            except ValidationError as exc:
                raise SpecError(
                    f"{op} gives an invalid layer: {pydantic_message(exc)}", where=f"{name}: {lname}"
                ) from None

    if not layers:
        what = ", ".join(sorted({d.split(":")[0] for _, d in skipped})) or "nothing"
        raise SpecError(f"no MAC-carrying layer (conv, linear, matmul) found in {label}; it calls {what}", where=name)
    network = Network(
        name=name,
        description=f"imported from PyTorch {label} ({len(layers)} layers, {len(skipped)} ops skipped)",
        source=f"torch.fx trace of {label} on input {shapes}",
        layers=layers,
    )
    return ImportResult(network=network, skipped=skipped)


_loaded = 0


def load_builder(spec: str) -> Callable[[], nn.Module]:
    """'path/to/model.py:build_fn' -> the callable `build_fn` defined in that file."""
    path_str, sep, fn_name = spec.rpartition(":")
    if not sep or not path_str or not fn_name:
        raise SpecError(f"expected 'path/to/model.py:function', got {spec!r}")
    path = Path(path_str)
    if not path.exists():
        raise SpecError("file not found", str(path))
    if not path.is_file():
        raise SpecError("is not a file, expected a Python source file", str(path))
    global _loaded
    _loaded += 1
    mod_name = f"rlmap_user_model_{_loaded}_" + re.sub(r"\W", "_", path.stem)
    mod_spec = importlib.util.spec_from_file_location(mod_name, path)
    if mod_spec is None or mod_spec.loader is None:
        raise SpecError("cannot be imported as a Python module (expected a .py file)", str(path))
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[mod_name] = module
    parent = str(path.resolve().parent)
    sys.path.insert(0, parent)  # let the file import its neighbours
    try:
        mod_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise SpecError(f"importing failed: {type(exc).__name__}: {exc}", str(path)) from exc
    finally:
        try:
            sys.path.remove(parent)
        except ValueError:
            pass
    fn = getattr(module, fn_name, None)
    if fn is None:
        available = sorted(
            n
            for n, v in vars(module).items()
            if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == mod_name
        )
        hint = f" (callables defined there: {', '.join(available)})" if available else ""
        raise SpecError(f"no function {fn_name!r}{hint}", str(path))
    if not callable(fn):
        raise SpecError(f"{fn_name!r} is a {type(fn).__name__}, not a callable", str(path))
    return fn


MAX_INPUT_ELEMENTS = 2**28
"""Largest example input the importer builds (1 GiB of float32): tracing runs the model on it."""


def parse_input_shape(text: str) -> tuple[int, ...]:
    """'1,3,224,224' (also '1x3x224x224', '(1, 3, 224, 224)') -> (1, 3, 224, 224)."""
    s = text.strip().strip("()[]").strip()
    if s.endswith(","):
        s = s[:-1]
    parts = [p.strip() for p in re.split(r"[,xX]", s)] if s else []
    if not parts or any(not re.fullmatch(r"\d+", p) for p in parts):
        raise SpecError(f"bad input shape {text!r}: expected positive integers separated by commas, e.g. 1,3,224,224")
    dims = tuple(int(p) for p in parts)
    if min(dims) <= 0:
        raise SpecError(f"bad input shape {text!r}: every dimension must be positive")
    if math.prod(dims) > MAX_INPUT_ELEMENTS:
        raise SpecError(
            f"input shape {text!r} has {math.prod(dims):,} elements ({math.prod(dims) * 4 / 2**30:.3g} GiB "
            f"as float32); the importer runs the model on it, so at most {MAX_INPUT_ELEMENTS:,} (1 GiB)"
        )
    return dims
