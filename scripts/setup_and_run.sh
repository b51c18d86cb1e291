#!/usr/bin/env bash
# Fresh machine -> results: create .venv, install the pinned dependencies and rm_core,
# then run the whole mini-scale DAG (`snakemake all`). Safe to rerun: pip and Snakemake
# skip what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch would pull the multi-GB CUDA build on a CPU box.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
export PATH="$PWD/.venv/bin:$PATH"
snakemake --cores "${CORES:-2}" all
