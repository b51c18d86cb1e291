#!/usr/bin/env bash
# .ci/slurm_run.sh — the mini DAG end to end through a real (one-node, localhost) SLURM:
#
#   .ci/slurm.sh up
#   snakemake --profile slurm all --configfile=.ci/ci_slurm.yaml     # under a hard time limit
#   .ci/slurm.sh down                                                # always (trap)
#
# The overlay only sends outputs to results/ci_slurm/ (and pins CPU-only, small resources), so this
# runs the whole mini DAG even after the local `snakemake -c2 all`. Prints the wall time at the end.
# Needs root or password-less sudo (for slurm.sh) and snakemake on PATH (the project venv).
# Knobs: SLURM_RUN_TIMEOUT (s, default 1800), SLURM_RUN_KEEP=1 (keep results/ci_slurm from a
# previous run instead of starting fresh), SLURM_RUN_KEEP_UP=1 (leave the cluster running),
# SLURM_RUN_PYTEST=0 (skip the two live-controller tests of tests/test_cluster.py run afterwards).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OVERLAY=.ci/ci_slurm.yaml
OUT=$(sed -n 's/^results_dir:[[:space:]]*\([^[:space:]#]*\).*/\1/p' "$OVERLAY")
LIMIT=${SLURM_RUN_TIMEOUT:-1800}
log() { echo "[slurm_run] $*" >&2; }

if [[ -x $ROOT/.venv/bin/snakemake ]]; then export PATH="$ROOT/.venv/bin:$PATH"; fi
command -v snakemake >/dev/null || { log "snakemake not on PATH"; exit 1; }

cleanup() {
  local rc=$?
  # Jobs of this repository still queued or running (a run killed by the time limit leaves them):
  # cancel them by id before the daemons go.
  if command -v squeue >/dev/null 2>&1; then
    local ids
    ids=$(squeue -h -o "%i %Z" 2>/dev/null | awk -v d="$ROOT" '$2 == d {print $1}' || true)
    if [[ -n $ids ]]; then log "cancelling leftover jobs: $(echo $ids)"; scancel $ids 2>/dev/null || true; fi
  fi
  if [[ ${SLURM_RUN_KEEP_UP:-0} != 1 ]]; then "$ROOT/.ci/slurm.sh" down || true; fi
  exit $rc
}
trap cleanup EXIT

.ci/slurm.sh up
if [[ ${SLURM_RUN_KEEP:-0} != 1 && -n $OUT && $OUT == results/* ]]; then rm -rf "$OUT"; fi

t0=$(date +%s)
set +e
# INT first (snakemake then cancels its SLURM jobs), KILL 60 s later if it still hangs.
timeout -k 60 -s INT "$LIMIT" snakemake --profile slurm all --configfile="$OVERLAY" 2>&1 | tee /tmp/ci-slurm-run.log
rc=${PIPESTATUS[0]}
set -e
wall=$(( $(date +%s) - t0 ))

if (( rc != 0 )); then
  log "snakemake failed (rc $rc) after ${wall}s; failed jobs' SLURM logs:"
  find .snakemake/slurm_logs -name '*.log' -newermt "@$t0" -print -exec tail -n 30 {} \; 2>/dev/null | tail -n 200 >&2 || true
  exit "$rc"
fi
for f in "$OUT/tables/table2.csv" "$OUT/figures/sudoku_turns.png"; do
  [[ -s $f ]] || { log "missing output $f"; exit 1; }
done
jobs=$(grep -c "submitted with SLURM jobid" /tmp/ci-slurm-run.log || true)
echo "slurm run: OK, ${jobs} jobs submitted to SLURM, wall ${wall}s (outputs in $OUT/)"

# The checks that need a live controller (skipped by a plain pytest run): a GPU job aimed at a
# partition without GPUs, and paper-config placeholders, are refused before anything is submitted.
if [[ ${SLURM_RUN_PYTEST:-1} == 1 ]]; then
  python -m pytest -q -p no:cacheprovider tests/test_cluster.py -k "gpu_job_for or placeholders"
fi
