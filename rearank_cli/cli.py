"""The `rearank` command line: a thin Typer app.

Each subcommand lives in `rearank_cli/commands/<name>.py` (flags only; its job, `rearank_cli/jobs/<name>.py`,
is imported lazily), so `rearank --help` never loads torch, vLLM, transformers or the JVM.
Exit codes: 0 success, 2 bad usage or bad input, 3 output written but part of the work failed,
1 other failures, 130/143 stopped by SIGINT/SIGTERM; each error class carries its own (`errors`); the
users' side of these conventions is docs/conventions.md.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import typer

from rearank_cli import __version__
from rearank_cli.commands import ABOUT, COMMANDS, docs_pointer
from rearank_cli.commands.options import RearankCommand
from rearank_cli.errors import InputError, Interrupted, RearankError

app = typer.Typer(
    name="rearank",
    help="LLM reasoning rerankers (REARANK) on TREC run files: retrieve, rerank, evaluate, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Documentation: README.md and docs/index.md; exit statuses, files, gzip and stdin/stdout: "
    "docs/conventions.md.",
)

for _name, _function in COMMANDS:
    _summary, _page = ABOUT[_name]
    app.command(name=_name, cls=RearankCommand, short_help=_summary, epilog=docs_pointer(_page))(_function)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rearank {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
) -> None:
    """LLM reasoning rerankers (REARANK) on TREC run files."""
    setup_logging(debug or env_debug())


def env_debug() -> bool:
    """`REARANK_DEBUG` set to anything but empty turns `--debug` on."""
    return bool(os.environ.get("REARANK_DEBUG"))


def wants_debug(args: list[str]) -> bool:
    """Whether this one invocation asked for tracebacks: `--debug` before the subcommand, or the env."""
    for arg in args:
        if arg == "--debug":
            return True
        if not arg.startswith("-"):
            return env_debug()
    return env_debug()


def setup_logging(debug: bool) -> None:
    """Log to stderr as `rearank: message` (stdout carries data only)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("rearank: %(message)s"))
    logger = logging.getLogger("rearank")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"rearank: error: {' '.join(message.split())}\n")
    return code


def _usage_message(exc: Exception) -> str:
    """A usage error as one line, pointing at the command's help."""
    format_message = getattr(exc, "format_message", None)
    message = format_message() if format_message else str(exc)
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "rearank"
    return f"{message} (see '{command} --help')"


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit status instead of exiting."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = wants_debug(args)
    try:
        result = app(args=args, prog_name="rearank", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except (KeyboardInterrupt, typer.Abort):  # Ctrl-C outside a job's own handlers (`jobs.signals`)
        stopped = Interrupted(signal.SIGINT)
        return _fail(str(stopped), stopped.exit_code)
    except typer.TyperException as exc:  # typer's (vendored) click usage errors: one line, bad usage
        return _fail(_usage_message(exc), getattr(exc, "exit_code", InputError.exit_code))
    except RearankError as exc:
        if debug:
            raise
        return _fail(str(exc), exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        return RearankError.exit_code
    except Exception as exc:  # noqa: BLE001 - the one place that turns crashes into one line
        if debug:
            raise
        return _fail(f"{crash_name(exc)}: {exc} (run with --debug for the traceback)", RearankError.exit_code)


def crash_name(exc: BaseException) -> str:
    """How a crash names its exception: the class name, with its module when the name alone says little
    (`zlib.error`, not `error`)."""
    kind = type(exc)
    name = kind.__qualname__
    if name.islower() and kind.__module__ != "builtins":
        return f"{kind.__module__}.{name}"
    return name


def main() -> None:
    """Console-script entry point."""
    sys.exit(run())
