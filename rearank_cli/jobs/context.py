"""What every job shares besides its settings: the `--config` file, progress bars, the vLLM guard of the JVM
start, and the settings groups of the chosen backend and of the window strategies (rerank).

Every job module has one entry point of one shape, `run(options, context) -> record`: `options` is the
command's settings object (`rearank_cli.settings`), `context` a `JobContext`, the record what the job wrote
(its manifest or summary). The commands call only that.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rearank_cli.settings.files import ConfigFile

if TYPE_CHECKING:
    from rearank_cli.rerank.strategies.base import StrategyParams
    from rearank_cli.settings.backends import BackendOptions


@dataclass(frozen=True)
class JobContext:
    """The settings a job gets besides its command's options; the defaults are those of a Python caller."""

    #: the `--config` file the options came from, if any (its path and sha256 go to the manifest's inputs)
    config: ConfigFile | None = None
    #: progress bars on stderr (they hide themselves when stderr is not a terminal)
    progress: bool = True
    #: import `tvm_ffi` before the JVM starts (`lucene.java.start`); False in a process that never loads vLLM
    vllm_guard: bool = True
    #: the settings group of the backend the options name (rerank: one of `settings.backends.BACKENDS`)
    backend: BackendOptions | None = None
    #: the window strategies' parameter objects their flags made (rerank; the defaults when empty)
    strategy_params: tuple[StrategyParams, ...] = ()

    @classmethod
    def of(cls, config: str | None = None, **values: Any) -> JobContext:
        """A context from a `--config` file's path (the Python functions that take one); `values` are the
        other fields."""
        return cls(config=_config_file(config) if config is not None else None, **values)

    @property
    def config_path(self) -> str | None:
        """The `--config` file's path, or None."""
        return self.config.path if self.config is not None else None

    @property
    def config_sha256(self) -> str | None:
        """The `--config` file's sha256, or None."""
        return self.config.sha256 if self.config is not None else None


def _config_file(path: str) -> ConfigFile:
    """A `--config` file known by its path only (its values are already in the options; sha256 "" when it is
    not a readable file)."""
    try:
        with open(path, "rb") as handle:
            return ConfigFile(path, hashlib.sha256(handle.read()).hexdigest(), {})
    except OSError:
        return ConfigFile(path, "", {})
