"""Typer commands generated from settings classes: every flag comes from a `settings` declaration.

`@command(RerankOptions, VllmOptions, ...)` turns a function `f(options, vllm, ..., config=None)` into a
Typer command whose options are the classes' fields (Typer reads the generated `__signature__`), with
`--config FILE.toml` for commands that write. Precedence, as click resolves it: flags given on the command
line, then environment variables, then the config file (click's `default_map`), then the defaults.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import typing
from collections.abc import Callable, Mapping
from typing import Any

import typer
from typer.core import TyperCommand

from rearank_cli.errors import InputError
from rearank_cli.settings.base import REQUIRED, Settings, Spec, iter_fields
from rearank_cli.settings.files import ConfigFile, read_config

CONFIG_HELP = ("Settings file (TOML): keys are this command's long flags without the dashes (`-` or `_` "
               "inside), the arguments by their names; flags given on the command line override it.")


def command(*classes: type[Settings], config: bool = True, aliases: Mapping[str, str] | None = None,
            tables: tuple[str, ...] = (), config_help: str = CONFIG_HELP,
            ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate `function(*settings, config=ConfigFile | None)`; it is called with one instance per class.

    `aliases`/`tables` go to `read_config`. A class may define `resolve(values, given, config)` to adjust the
    merged values (`given`: the names set on the command line or by environment variable), and
    `note_unused(values, explicit)` to warn about settings given on the command line or in --config
    (`explicit`) that the values make pointless."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        params = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)]
        params += [_parameter(field, spec, hint) for field, spec, hint in _ordered_fields(classes)]
        old = _deprecated(classes)
        params += [_old_parameter(name, flag, hint) for name, (_, flag, hint) in old.items()]
        if config:
            def reader(ctx: typer.Context, path: str | None) -> str | None:
                return _load_config(ctx, path, classes, aliases, tables)

            option = typer.Option(None, "--config", metavar="FILE.toml", help=config_help, is_eager=True,
                                  callback=reader, show_default=False)
            params.append(inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=option,
                                            annotation=str | None))

        @functools.wraps(function)
        def run(ctx: typer.Context, **values: Any) -> Any:
            values.pop("config", None)
            loaded: ConfigFile | None = ctx.meta.get("rearank.config")
            if loaded is not None:  # config-only keys (tables) that no flag carries
                values.update({key: value for key, value in loaded.values.items() if key not in values})
            olds = {name: values.pop(name) for name in old}
            given = {name for name in values if _source(ctx, name) in ("COMMANDLINE", "ENVIRONMENT")}
            for name, value in olds.items():
                if value is not None:
                    given.add(_use_old(old[name], value, values, given))
            explicit = {name for name in values if _source(ctx, name) == "COMMANDLINE"} | set(loaded.values if loaded
                                                                                              else ())
            objects = []
            for cls in classes:
                resolve = getattr(cls, "resolve", None)
                merged = resolve(values, given, loaded) if resolve else values
                objects.append(cls.pick(merged))
                note = getattr(cls, "note_unused", None)
                if note:
                    note(merged, explicit)
            return function(*objects, config=loaded)

        del run.__wrapped__  # Typer must read the generated signature, not the function's
        run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        run.__annotations__ = {}
        run.settings = classes  # type: ignore[attr-defined]
        return run

    return decorate


def _ordered_fields(classes: tuple[type[Settings], ...]) -> list[tuple[dataclasses.Field[Any], Spec, Any]]:
    """The classes' settings in `--help` order: a class that `follows` a setting right after it."""
    ordered = []
    for field, spec, hint in iter_fields(*(cls for cls in classes if not cls.follows)):
        ordered.append((field, spec, hint))
        ordered += iter_fields(*(cls for cls in classes if cls.follows == field.name))
    placed = {field.name for field, _, _ in ordered}
    return ordered + [item for item in iter_fields(*classes) if item[0].name not in placed]


def _parameter(field: dataclasses.Field[Any], spec: Spec, hint: Any) -> inspect.Parameter:
    """The Typer option (or argument, without flags) that declares `field`."""
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        default = REQUIRED
    kwargs: dict[str, Any] = {"help": spec.help, "show_default": spec.show_default}
    if spec.metavar:
        kwargs["metavar"] = spec.metavar
    if spec.envvar:
        kwargs["envvar"] = spec.envvar
    if spec.min is not None:
        kwargs["min"] = spec.min
    if spec.max is not None:
        kwargs["max"] = spec.max
    if spec.choices:
        kwargs["parser"] = _choice(spec)
        kwargs.setdefault("metavar", "<" + "|".join(spec.choices) + ">")
    if not spec.flags:  # an argument: named in capitals in the usage line, its help and its messages
        kwargs["metavar"] = spec.metavar or field.name.upper()
    elif "metavar" not in kwargs and _item_type(hint):  # a repeatable option: the type of one value
        kwargs["metavar"] = f"<{_item_type(hint)}>"
    info = typer.Option(default, *spec.flags, **kwargs) if spec.flags else typer.Argument(default, **kwargs)
    return inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=hint)


def _item_type(hint: Any) -> str | None:
    """`str` for `list[str]` (or `list[str] | None`): what one value of a repeatable option is; else None."""
    for candidate in (hint, *typing.get_args(hint)):
        if typing.get_origin(candidate) is list:
            return getattr(typing.get_args(candidate)[0], "__name__", None)
    return None


def _deprecated(classes: tuple[type[Settings], ...]) -> dict[str, tuple[dataclasses.Field[Any], str, Any]]:
    """{parameter name: (field, old flag, type)} of every deprecated spelling (`model_as_m` for `-m`)."""
    return {f"{field.name}_as_{flag.lstrip('-').replace('-', '_')}": (field, flag, hint)
            for field, spec, hint in iter_fields(*classes) for flag in spec.deprecated}


def _old_parameter(name: str, flag: str, hint: Any) -> inspect.Parameter:
    """A hidden option for a deprecated spelling: None unless given."""
    info = typer.Option(None, flag, hidden=True, show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=hint | None)


def _use_old(old: tuple[dataclasses.Field[Any], str, Any], value: Any, values: dict[str, Any],
             given: set[str]) -> str:
    """Take the value given with a deprecated spelling (one line on stderr says so); returns its name."""
    field, flag, _ = old
    new = field.metadata["setting"].flag(field.name)
    logging.getLogger("rearank").warning("%s for %s is deprecated; use %s", flag, new, new)
    if field.name in given:
        raise InputError(f"{flag} and {new} both given: give {new} once ({flag} is its deprecated spelling)")
    values[field.name] = value
    return field.name


def _choice(spec: Spec) -> Callable[[str], str]:
    """The one check of a choice on the command line (click reports it as `Invalid value for '--flag'`)."""

    def parse(value: str) -> str:
        problem = spec.check(value)
        if problem:
            raise typer.BadParameter(problem)
        return value

    return parse


def _load_config(ctx: typer.Context, path: str | None, classes: tuple[type[Settings], ...],
                 aliases: Mapping[str, str] | None, tables: tuple[str, ...]) -> str | None:
    """`--config`'s callback (eager): read the file and make its values the defaults of the flags."""
    if path is None or ctx.resilient_parsing:
        return path
    loaded = read_config(path, classes, aliases, tables)
    ctx.meta["rearank.config"] = loaded
    ctx.default_map = {**(ctx.default_map or {}), **loaded.values}
    return path


def _source(ctx: typer.Context, name: str) -> str:
    """Where click took a value from, by name (Typer vendors its own click)."""
    return getattr(ctx.get_parameter_source(name), "name", "")


class RearankCommand(TyperCommand):
    """A command whose help writes its arguments one way (`RUN`, `[RUN]` when optional, `CORPUS...` for
    several, no type) and marks `[required]` what the command needs, from the command line or `--config`
    (its settings classes' `needed`)."""

    def needed(self) -> set[str]:
        """The settings this command cannot run without, however given."""
        classes = getattr(self.callback, "settings", ())
        return {name for cls in classes for name in cls.needed}

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        needed = self.needed()
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required or param.name in needed else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        needed = self.needed()
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
            if param.name in needed and "[required]" not in text:
                text = f"{text}  [required]"
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), text))
            else:
                options.append((name, text))
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _argument_name(param: Any) -> str:
    """`RUN`, or `RUN...` for an argument that takes several values."""
    return str(param.metavar) + ("..." if param.nargs != 1 else "")
