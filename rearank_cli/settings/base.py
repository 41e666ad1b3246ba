"""How a setting is declared: `setting(default, "--flag", help=...)` on a frozen dataclass field.

A settings class (one per command, one per backend) is a frozen, keyword-only dataclass whose fields
are declared with `setting()`. The field gives the name, the type and the default; the `Spec` in its
metadata gives the flag spellings, the help, the choices, the bounds and the environment variable.
The CLI generates its Typer options from these fields, `--config` files use the field names as keys,
the Python API takes its defaults from them and manifests record the resolved values.
Standard library only.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from rearank_cli.errors import InputError

S = TypeVar("S", bound="Settings")

#: the default of a setting the command line must give (`typer.Option(...)`)
REQUIRED: Any = ...


@dataclass(frozen=True)
class Spec:
    """What the command line needs to know about one setting besides its name, type and default.

    `flags`: the option's spellings (`("-o", "--output")`); empty for a positional argument.
    `show_default`: True, False, or the text shown instead of the default.
    `choices`: the allowed values; one ending in `:N` allows that prefix with any number (`cuda:N`).
    `deprecated`: old spellings still accepted (left out of `--help`; using one prints a deprecation line).
    `recorded_when_default`: False leaves the setting out of `as_dict` (the manifest) while it has its
    default, so files written before the setting existed stay the same.
    """

    flags: tuple[str, ...]
    help: str
    choices: tuple[str, ...] = ()
    envvar: str | None = None
    min: float | None = None
    max: float | None = None
    metavar: str | None = None
    show_default: bool | str = True
    deprecated: tuple[str, ...] = ()
    recorded_when_default: bool = True

    def flag(self, name: str) -> str:
        """How messages name the setting: its long flag (`--window`), or its name for an argument."""
        longs = [flag for flag in self.flags if flag.startswith("--")]
        return longs[0] if longs else (self.flags[0] if self.flags else self.metavar or name)

    def check(self, value: Any) -> str | None:
        """Why `value` is not allowed (one line naming the allowed values), or None when it is."""
        if self.choices and value is not None and not allowed(value, self.choices):
            return f"{value!r} is not one of {', '.join(self.choices)}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            if self.min is not None and value < self.min:
                return f"{value!r} is less than {self.min}"
            if self.max is not None and value > self.max:
                return f"{value!r} is more than {self.max}"
        return None


def allowed(value: Any, choices: tuple[str, ...]) -> bool:
    """Whether `value` is one of `choices`, where a choice ending in `:N` (`cuda:N`) stands for that prefix
    followed by a number (`cuda:0`, `cuda:3`)."""
    if value in choices:
        return True
    return isinstance(value, str) and any(
        choice.endswith(":N") and value.startswith(choice[:-1]) and value[len(choice) - 1:].isdigit()
        for choice in choices)


def setting(default: Any, *flags: str, help: str, choices: tuple[str, ...] = (), envvar: str | None = None,
            min: float | None = None, max: float | None = None, metavar: str | None = None,
            show_default: bool | str = True, deprecated: tuple[str, ...] = (),
            recorded_when_default: bool = True) -> Any:
    """A settings field: `window: int = setting(20, "--window", help="Passages per window.")`.

    `default` is the value (REQUIRED: the command line must give it); no flags = a positional argument;
    `deprecated`: old spellings of the flag, still accepted with a deprecation line on stderr;
    `recorded_when_default`: see `Spec`."""
    spec = Spec(tuple(flags), help, tuple(choices), envvar, min, max, metavar, show_default, tuple(deprecated),
                recorded_when_default)
    metadata = {"setting": spec}
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Base of every settings class: checks each value against its `Spec` when built."""

    #: what `--help` and messages call the command (e.g. "rerank")
    command: ClassVar[str] = ""
    #: settings without a default that may come from `--config` as well as the command line (so the command
    #: line does not enforce them); `--help` marks them `[required]`
    needed: ClassVar[tuple[str, ...]] = ()
    #: the setting of another class of the same command whose flag this class's flags follow in `--help`
    #: and whose value its values follow in the manifest ("": in the order the command lists the classes)
    follows: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for field, _, _ in fields(type(self)):
            self.check_value(field.name, getattr(self, field.name))

    @classmethod
    def check_value(cls, name: str, value: Any) -> None:
        """InputError (exit 2) naming the flag and the allowed values when `value` does not fit setting
        `name` (its type, its choices, its bounds): the one check every command and the API share."""
        for field, spec, hint in fields(cls):
            if field.name == name:
                problem = type_problem(value, hint) or spec.check(value)
                if problem:
                    raise InputError(f"invalid value for {spec.flag(name)}: {problem}")
                return
        raise KeyError(f"{cls.__name__} has no setting {name!r}")

    def as_dict(self) -> dict[str, Any]:
        """`{name: value}` of every setting (lists copied), as a manifest records them (a setting declared
        `recorded_when_default=False` only when it differs from its default)."""
        return {field.name: _plain(getattr(self, field.name)) for field, spec, _ in fields(type(self))
                if spec.recorded_when_default or getattr(self, field.name) != type(self).default(field.name)}

    @classmethod
    def default(cls, name: str) -> Any:
        """The declared default of setting `name` (KeyError for an unknown or required one)."""
        for field, _, _ in fields(cls):
            if field.name == name:
                if field.default is not dataclasses.MISSING:
                    return field.default
                if field.default_factory is not dataclasses.MISSING:
                    return field.default_factory()
        raise KeyError(f"{cls.__name__} has no default for {name!r}")

    @classmethod
    def choices(cls, name: str) -> tuple[str, ...]:
        """The allowed values of setting `name`."""
        return next(spec.choices for field, spec, _ in fields(cls) if field.name == name)

    @classmethod
    def pick(cls: type[S], values: Mapping[str, Any]) -> S:
        """An instance from those of `values` that are this class's settings (the rest ignored)."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})


def merged_dict(*objects: Settings) -> dict[str, Any]:
    """The `as_dict()` of several settings objects of one command, in one mapping: the values of a class
    that `follows` a setting come right after that setting's, the others in the order given."""
    placed: dict[str, list[Settings]] = {}
    for item in objects:
        if type(item).follows:
            placed.setdefault(type(item).follows, []).append(item)
    merged: dict[str, Any] = {}
    for item in (item for item in objects if not type(item).follows):
        for key, value in item.as_dict().items():
            merged[key] = value
            for follower in placed.pop(key, []):
                merged.update(follower.as_dict())
    for followers in placed.values():
        for follower in followers:
            merged.update(follower.as_dict())
    return merged


def fields(cls: type) -> tuple[tuple[dataclasses.Field[Any], Spec, Any], ...]:
    """`(field, spec, resolved type)` of every declared setting of `cls`, in declaration order."""
    if cls not in _FIELDS:
        hints = typing.get_type_hints(cls)
        _FIELDS[cls] = tuple((field, field.metadata["setting"], hints[field.name])
                             for field in dataclasses.fields(cls) if "setting" in field.metadata)
    return _FIELDS[cls]


_FIELDS: dict[type, tuple[tuple[dataclasses.Field[Any], Spec, Any], ...]] = {}


def iter_fields(*classes: type) -> Iterator[tuple[dataclasses.Field[Any], Spec, Any]]:
    """The declared settings of several classes, in order."""
    for cls in classes:
        yield from fields(cls)


def type_problem(value: Any, hint: Any) -> str | None:
    """Why `value` does not have the type `hint` (str, int, float, bool, list[str], X | None), or None.

    An int is a valid float; a bool is not an int."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if typing.get_origin(option) is list:
            (item,) = typing.get_args(option)
            if isinstance(value, list | tuple) and all(type_problem(v, item) is None for v in value):
                return None
        elif option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return None
        elif option is int and isinstance(value, int) and not isinstance(value, bool):
            return None
        elif isinstance(option, type) and option not in (int, float) and isinstance(value, option):
            return None
    return f"{value!r} is not {type_name(hint)}"


def type_name(hint: Any) -> str:
    """A type as users read it: `int`, `str or nothing`, `list of str`."""
    if typing.get_origin(hint) in (typing.Union, _UnionType):
        names = [type_name(option) for option in typing.get_args(hint) if option is not type(None)]
        return " or ".join(names)
    if typing.get_origin(hint) is list:
        return f"a list of {type_name(typing.get_args(hint)[0])}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


_UnionType = type(int | None)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value
