"""Running the Snakemake workflow in tests: a copy of it in a temporary folder, and the CLI."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# what a run needs: the Snakefile, the configs, rules, schemas, envs, the
# SLURM profile and the CI overlay; not results/ or .snakemake/
FILES = ("Snakefile", "config.yaml")
DIRS = ("workflow", "config", "envs", "slurm", ".ci")


def copy_workflow(dest: Path) -> Path:
    for name in FILES:
        shutil.copy(ROOT / name, dest / name)
    for name in DIRS:
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, dest / name)
    return dest


def run_snakemake(args, cwd, timeout=300):
    """``snakemake *args`` in ``cwd`` with this interpreter's bin first on PATH (so the rules find
    ``rm-core``); the result's ``out`` is stdout + stderr."""
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    r = subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=timeout)
    r.out = r.stdout + r.stderr
    return r
