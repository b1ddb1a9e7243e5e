"""YAML I/O and the preset library in envs/: every load error becomes a one-line SpecError."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from rlmap.spec.arch import Architecture
from rlmap.spec.errors import SpecError, pydantic_message
from rlmap.spec.layer import Layer, Network
from rlmap.spec.mapping import Mapping

ModelT = TypeVar("ModelT", bound=BaseModel)


def repo_dir() -> Path:
    """The folder above the package: the checkout for an editable install (site-packages for a wheel)."""
    return Path(__file__).resolve().parents[2]


def data_dir(name: str) -> Path:
    """Where the data folder `name` (envs, agents or checkpoints) is: the copy a wheel ships inside the package
    (`rlmap/_data/NAME`, put there by setup.py), else `NAME/` in the checkout (editable install)."""
    shipped = resources.files("rlmap") / "_data" / name
    if isinstance(shipped, Path) and shipped.is_dir():
        return shipped
    return repo_dir() / name


def envs_dir() -> Path:
    """The preset folder: $RLMAP_ENVS, else the shipped `envs/`."""
    env = os.environ.get("RLMAP_ENVS")
    return Path(env) if env else data_dir("envs")


def agents_dir() -> Path:
    """Agent hyperparameter configs (`agents/*.yaml`)."""
    return data_dir("agents")


def checkpoints_dir() -> Path:
    """Shipped pretrained policies and surrogates (`checkpoints/`)."""
    return data_dir("checkpoints")


def read_yaml(path: str | Path) -> Any:
    p = Path(path)
    if not p.exists():
        raise SpecError("file not found", str(p))
    if p.is_dir():
        raise SpecError("is a directory, expected a YAML file", str(p))
    try:
        with p.open() as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise SpecError(f"malformed YAML{at}: {problem}", str(p)) from None


def write_yaml(data: Any, path: str | Path) -> Path:
    from rlmap.spec.outputs import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120))


def parse_model(cls: type[ModelT], data: Any, where: str) -> ModelT:
    """Validate `data` as `cls`; errors name the source and the field."""
    if not isinstance(data, dict):
        raise SpecError(f"expected a YAML mapping describing a {cls.__name__}, got {type(data).__name__}", where)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise SpecError(pydantic_message(exc), where) from None


def dump_model(model: BaseModel) -> dict[str, Any]:
    """Plain-YAML form of a spec (tuples become lists) that parse_model reads back equal."""
    return _plain(model.model_dump(mode="json", exclude_defaults=True))


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ---------------------------------------------------------------- presets
def _preset_names(kind: str) -> list[str]:
    folder = envs_dir() / kind
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


GENERATED_DIR = "generated"
"""envs/generated: generated architectures (rlmap.hardware.generator) kept out of training; loadable by name."""


def list_generated() -> list[str]:
    return _preset_names(GENERATED_DIR)


def list_architectures() -> list[str]:
    return _preset_names("arch")


def list_networks() -> list[str]:
    return _preset_names("networks")


def _resolve(name_or_path: str, kind: str) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    preset = envs_dir() / kind / f"{name_or_path}.yaml"
    if preset.exists():
        return preset
    if kind == "arch" and (envs_dir() / GENERATED_DIR / f"{name_or_path}.yaml").exists():
        return envs_dir() / GENERATED_DIR / f"{name_or_path}.yaml"  # the held-out generated set, e.g. gen3
    known = ", ".join(_preset_names(kind)) or "none"
    label = "architecture" if kind == "arch" else "network"
    raise SpecError(f"no {label} preset or file named {name_or_path!r} (presets: {known})")


def load_architecture(name_or_path: str) -> Architecture:
    path = _resolve(name_or_path, "arch")
    return parse_model(Architecture, read_yaml(path), str(path))


def load_network(name_or_path: str) -> Network:
    path = _resolve(name_or_path, "networks")
    return parse_model(Network, read_yaml(path), str(path))


def load_layer(data: Any, where: str = "layer") -> Layer:
    return parse_model(Layer, data, where)


def save_network(net: Network, path: str | Path) -> Path:
    return write_yaml(dump_model(net), path)


def save_architecture(arch: Architecture, path: str | Path) -> Path:
    return write_yaml(dump_model(arch), path)


def load_mapping(path: str | Path, arch: Architecture) -> tuple[Mapping, str | None]:
    """Read a mapping file written by `save_mapping`; returns the mapping and the layer it names."""
    data = read_yaml(path)
    mapping = Mapping.from_dict(data, arch, where=str(path))
    layer = data.get("layer") if isinstance(data, dict) else None
    return mapping, layer


def save_mapping(
    mapping: Mapping,
    arch: Architecture,
    path: str | Path,
    layer: Layer | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    data = mapping.to_dict(arch, layer)
    if extra:
        data.update(extra)
    return write_yaml(data, path)
