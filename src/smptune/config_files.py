"""Reading and writing config files: safe YAML (``1e-4`` a float, duplicate keys refused),
TOML, YAML text for config-like mappings, and the fixed values of a ``best_config.yaml``."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from smptune.errors import ConfigError
from smptune.params import Params

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["config_to_yaml", "read_best_config", "read_toml", "read_yaml"]


class _Loader(yaml.SafeLoader):
    """Safe YAML that reads ``1e-4`` as a float (YAML 1.2) and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: Path, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{path}{line}: invalid YAML ({problem})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None


def read_toml(path: Path, text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        lineno = getattr(exc, "lineno", None)
        if lineno is None:
            found = re.search(r"line (\d+)", str(exc))
            lineno = int(found.group(1)) if found else None
        line = f":{lineno}" if lineno is not None else ""
        raise ConfigError(f"{path}{line}: invalid TOML ({exc})") from None


class _Dumper(yaml.SafeDumper):
    """Safe YAML that writes tuples as lists."""


_Dumper.add_representer(tuple, lambda dumper, data: dumper.represent_list(list(data)))


def config_to_yaml(data: Mapping[str, object]) -> str:
    """YAML text for a config-like mapping (keys in the given order), e.g. best_config.yaml."""
    return yaml.dump(
        dict(data), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def read_best_config(path_text: str, source: Path | None) -> Params:
    """The fixed hyperparameters of a ``best_config.yaml`` (relative to the config's folder)."""
    path = Path(path_text).expanduser()
    if not path.is_absolute() and source is not None:
        path = Path(source).parent / path
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except FileNotFoundError:
        raise ConfigError(f"enqueue: no such file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"enqueue: cannot read {str(path)!r} ({exc})") from None
    space = data.get("hyperparameters") if isinstance(data, Mapping) else None
    if not isinstance(space, Mapping):
        raise ConfigError(f"enqueue: {str(path)!r} has no hyperparameters mapping")
    out = {}
    for name, entry in space.items():
        if isinstance(entry, Mapping) and entry.get("distribution") == "value":
            out[str(name)] = entry.get("value")
        elif not isinstance(entry, Mapping | list):
            out[str(name)] = entry
        else:
            raise ConfigError(
                f"enqueue: {str(path)!r}: hyperparameters.{name} is not a fixed value (a "
                "best_config.yaml fixes every one)"
            )
    return out
