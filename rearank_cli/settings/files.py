"""`--config FILE.toml`: read and check a command's settings file; write settings back as TOML.

Keys are the settings' names (`window`, `max_tokens`, `fmt`) or their long flags without the dashes
(`max-tokens`, `format`). An unknown key or a value of the wrong type or outside the allowed values is an
InputError (exit 2) naming the file and the key.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rearank_cli.errors import InputError
from rearank_cli.settings.base import Settings, iter_fields, type_problem


@dataclass(frozen=True)
class ConfigFile:
    """A `--config` file that was read: its path, its sha256 and its checked values by setting name."""

    path: str
    sha256: str
    values: dict[str, Any]


def read_config(path: str, classes: Iterable[type[Settings]], aliases: Mapping[str, str] | None = None,
                tables: Iterable[str] = ()) -> ConfigFile:
    """Read `path` as the settings of `classes`: `aliases` maps extra key spellings to names, `tables` are
    names whose value is a TOML table passed on as it is (train's `[trl]`)."""
    import hashlib

    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a TOML file", path) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML ({exc})", path) from None
    classes = list(classes)
    known = {field.name: (spec, hint) for field, spec, hint in iter_fields(*classes)}
    spellings = {flag[2:].replace("-", "_"): field.name for field, spec, _ in iter_fields(*classes)
                 for flag in spec.flags if flag.startswith("--")}
    spellings.update(aliases or {})
    command = classes[0].command
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        name = name if name in known else spellings.get(key, spellings.get(name, name))
        if name in tables:
            if not isinstance(value, dict):
                raise InputError(f"key {key!r}: must be a table", path)
            values[name] = value
            continue
        if name not in known:
            raise InputError(f"unknown key {key!r} (keys are the settings of `rearank {command}`: its long "
                             "flags without the dashes)", path)
        spec, hint = known[name]
        if isinstance(value, int) and not isinstance(value, bool) and type_problem(value, hint) and \
                type_problem(float(value), hint) is None:
            value = float(value)
        problem = type_problem(value, hint) or spec.check(value)
        if problem:
            raise InputError(f"key {key!r}: {problem}", path)
        values[name] = list(value) if isinstance(value, list) else value
    return ConfigFile(path, hashlib.sha256(raw).hexdigest(), values)


def to_toml(values: Mapping[str, Any]) -> str:
    """`values` (settings by name: str, int, float, bool, lists of them, None; one level of tables) as a
    TOML document that `read_config` reads back to the same values. None (not set) is left out."""
    lines: list[str] = []
    tables: list[str] = []
    for key, value in values.items():
        if isinstance(value, Mapping):
            tables += ["", f"[{_key(key)}]", *(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)]
        elif value is not None:
            lines.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(lines + tables) + "\n"


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def manifest_settings_toml(path: str) -> str:
    """The `settings` block of a manifest or summary JSON (`OUT.manifest.json`, `rearank_train.json`, ...) as
    a `--config` TOML file."""
    try:
        with open(path, "rb") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path) from None
    settings = document.get("settings") if isinstance(document, dict) else None
    if not isinstance(settings, dict):
        raise InputError("no `settings` block (is this a rearank manifest?)", path)
    return to_toml(settings)
