"""YAML with local tags (`!Storage {...}`, `!Component {...}`), as Timeloop and AccelForge files use them.

Both the exporters (rlmap/interop/export.py) and the importers (rlmap/interop/mapping_import.py) read and
write tagged YAML through these helpers.
"""

from __future__ import annotations

from typing import Any

import yaml


class Tagged(dict):
    """A YAML mapping written with a local tag, e.g. ``!Storage {tensors: [...], component: GLB}``."""

    def __init__(self, tag: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tag = tag if tag.startswith("!") else f"!{tag}"

    def __repr__(self) -> str:
        return f"{self.tag}{dict.__repr__(self)}"


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # never write &id001 anchors
        return True


_Dumper.add_representer(Tagged, lambda d, node: d.represent_mapping(node.tag, dict(node)))


class _TaggedLoader(yaml.SafeLoader):
    pass


_TaggedLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: Tagged("!" + suffix, loader.construct_mapping(node, deep=True))
)


def dump_yaml(data: Any, header: str = "") -> str:
    """YAML text of `data` (Tagged dicts written with their tag), preceded by `header` as comments."""
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    lines = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.strip().splitlines()) if header else ""
    return lines + text


def load_tagged_yaml(text: str) -> Any:
    """Parse YAML that may contain local tags (`!Storage`, `!Component`, ...) into Tagged dicts."""
    return yaml.load(text, Loader=_TaggedLoader)  # noqa: S506 - SafeLoader subclass
