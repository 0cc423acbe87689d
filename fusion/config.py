"""Strict config loading: YAML files into dataclasses.

One dataclass per component lives beside its component; this module only composes and
loads. Loading is strict: an unknown key, a wrong type or a bad value is a
:class:`~fusion.errors.ConfigError` that names the key, the value and the fix.

YAML files may start with ``base: other.yaml`` (relative to the file); the override's
keys are merged recursively over the base. ``--set a.b=value`` overrides are parsed as
YAML scalars and applied last.

Renamed keys: a dataclass lists its former key names in ``RENAMED_KEYS`` (old -> new, a
``ClassVar``); :func:`from_dict` reads an old name as the new one with a warning, so run
folders, checkpoints and LM folders written before a rename still load. New files are
written with the new names only.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fusion.errors import ConfigError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check/convert ``value`` against the annotation ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: {value!r} is not a {_type_name(tp)}; fix the value in the config")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}; choose one of them")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}; write it as [a, b, ...]")
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        val_tp = args[1] if len(args) == 2 else Any
        return {k: _convert(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: {value!r} is not a number; write e.g. {key.split('.')[-1]}: 0.5")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: {value!r} is not an integer; write a whole number")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: {value!r} is not true/false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: {value!r} is not a string; quote it")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: {value!r} is not a {_type_name(tp)}")
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, strictly.

    Args:
        cls: a dataclass type; nested dataclass fields are built recursively.
        data: the mapping, e.g. parsed YAML.
        prefix: dotted path of ``data`` inside the whole config, for error messages.

    Raises:
        ConfigError: unknown key (with the known ones listed), wrong type, or a value the
            dataclass's ``__post_init__`` rejects.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {data!r}")
    data = renamed_to_current(cls, data, prefix)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown key '{where}{unknown[0]}'; known keys of {cls.__name__}: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _convert(value, hints[name], f"{prefix}.{name}" if prefix else name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{prefix or cls.__name__}: {err}") from None


def renamed_to_current(cls: type, data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``data`` with the former key names of ``cls`` (its ``RENAMED_KEYS``, old -> new) replaced by the current ones.

    Raises:
        ConfigError: both the old and the new name are given.
    """
    renamed: dict[str, str] = getattr(cls, "RENAMED_KEYS", {})
    if not any(old in data for old in renamed):
        return data
    where = f"{prefix}." if prefix else ""
    data = dict(data)
    for old, new in renamed.items():
        if old not in data:
            continue
        if new in data:
            raise ConfigError(f"'{where}{old}' and '{where}{new}' are the same setting ({old} is its former name); "
                              f"keep only {new}")
        logger.warning("config key '%s%s' is now '%s%s'; reading it under the new name", where, old, where, new)
        data[new] = data.pop(old)
    return data


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML/JSON-able data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(obj))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config, resolving ``base:`` chains. Returns the merged mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; give a path to a YAML file (see configs/)")
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        at = f" line {line + 1}" if line is not None else ""
        raise ConfigError(f"{path}{at}: not valid YAML ({getattr(err, 'problem', err)}); fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: 'base' must be a path string, got {base!r}")
        data = _merge(read_yaml(path.parent / base, _seen + (path.resolve(),)), data)
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML scalars) to a mapping."""
    data = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.max_epochs=5")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Load dataclass ``cls`` from a YAML file (optional) plus ``--set`` overrides, strictly.

    An error is blamed on what caused it: the file (named) when the file alone is already
    invalid, else the ``--set`` overrides (a typo in a key given on the command line).
    """
    base = read_yaml(path) if path is not None else {}
    data = apply_overrides(copy.deepcopy(base), overrides)
    where = str(path) if path is not None else "config"
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        if overrides and _valid(cls, base):
            raise ConfigError(f"--set {', '.join(overrides)}: {err}") from None
        raise ConfigError(f"{where}: {err}") from None


def _valid(cls: type, data: dict[str, Any]) -> bool:
    try:
        from_dict(cls, data)
    except ConfigError:
        return False
    return True
