"""How the workflow's rules ask a SLURM cluster for resources (config section ``cluster``).

Every compute rule belongs to a *group* of ``cluster.resources`` (train, sudoku_train, probe,
eval, cpu, light, or a new one added to config.yaml) and writes, e.g. for text training::

    threads: CLUSTER.threads("train")
    resources: **CLUSTER.resources("train")
    retries: CLUSTER.retries
    shell: CLUSTER.launcher("train") + "text-train --threads {threads} ..."

Light rules (data, tables, figures) are ``localrules`` and use the ``light`` group (only
mem_mb/runtime, for local scheduling). Mapping to sbatch (snakemake-executor-plugin-slurm 2.8.0,
see slurm/README.md):

- gpus N > 0: ``gpu=N`` (``--gpus=N``); ``gpu_model`` gives ``--gpus=<model>:N``, ``constraint``
  gives ``-C``; partition ``gpu_partition`` (null: ``partition``).
- gpus 0: no GPU request; partition ``partition``.
- only :meth:`Cluster.launcher` turns N > 1 GPUs into N processes (``accelerate launch``).
- a null partition/account/qos is not sent (the cluster's default partition, no account/QoS).
- mem_mb: ``--mem``; runtime (minutes): ``-t``; cpus_per_task = threads (``cpus``, null: the
  top-level ``threads``): ``-c``.

A value ``SET_ME`` (config/paper.yaml's placeholders) passes through for dry runs; submitting
with one left stops in :meth:`Cluster.preflight` with an error naming the key.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable

PLACEHOLDER = "SET_ME"
NAME_KEYS = ("partition", "gpu_partition", "account", "qos", "gpu_model", "constraint")


class ClusterConfigError(ValueError):
    """A cluster setting that cannot work; the message names the config key."""


class Cluster:
    """The ``cluster`` config section and the top-level ``threads``, as rule resources."""

    def __init__(self, section: dict, threads: int):
        self.section = section
        self.default_threads = int(threads)
        self.retries = section["retries"]  # None: snakemake's --retries (profile: 1)

    def group(self, name: str) -> dict:
        groups = self.section.get("resources") or {}
        if name not in groups:
            raise ClusterConfigError(
                f"config key cluster.resources.{name} is missing: the rules of group '{name}' need it; "
                f"the config defines {sorted(groups)}. Add cluster.resources.{name}: "
                "{gpus: N, cpus: N|null, mem_mb: N, runtime: MINUTES} to config.yaml."
            )
        g = groups[name]
        for key in ("gpus", "mem_mb", "runtime"):
            if g.get(key) is None:
                raise ClusterConfigError(f"config key cluster.resources.{name}.{key} is missing or null; it is required.")
        return g

    def gpus(self, name: str) -> int:
        return int(self.group(name)["gpus"])

    def threads(self, name: str) -> int:
        """The rule's threads (= sbatch --cpus-per-task): ``cpus`` of the group, else ``threads``."""
        cpus = self.group(name).get("cpus")
        return int(cpus if cpus is not None else self.default_threads)

    def resources(self, name: str) -> dict:
        """The ``resources:`` of a rule of group ``name`` (see the module docstring)."""
        g = self.group(name)
        res = {"mem_mb": int(g["mem_mb"]), "runtime": int(g["runtime"])}
        if name == "light":  # local rules: never submitted
            return res
        gpus = int(g["gpus"])
        s = self.section
        # = the rule's threads, which the plugin sends anyway; explicit so that a dry run (which caps
        # threads at its 1 core) shows what sbatch gets
        res["cpus_per_task"] = self.threads(name)
        partition = (s["gpu_partition"] or s["partition"]) if gpus > 0 else s["partition"]
        if partition:
            res["slurm_partition"] = partition
        if s["account"]:
            res["slurm_account"] = s["account"]
        if s["qos"]:
            res["qos"] = s["qos"]
        if gpus > 0:
            res["gpu"] = gpus
            if s["gpu_model"]:
                res["gpu_model"] = s["gpu_model"]
            if s["constraint"]:
                res["constraint"] = s["constraint"]
        return res

    def launcher(self, name: str) -> str:
        """The command prefix of a training rule: ``rm-core`` for 0 or 1 GPU (one process; on one GPU
        accelerate picks it up by itself), ``accelerate launch`` with one process per GPU otherwise
        (data parallel; each process draws its own batch). Port 0: a free port, so two jobs on one
        node do not collide."""
        n = self.gpus(name)
        if n <= 1:
            return "rm-core "
        return (f"accelerate launch --multi_gpu --num_processes {n} --num_machines 1 --mixed_precision no "
                "--dynamo_backend no --main_process_port 0 -m rm_core.cli ")

    def placeholders(self) -> list[str]:
        return [f"cluster.{k}" for k in NAME_KEYS if self.section.get(k) == PLACEHOLDER]

    def preflight(self, gpu_jobs: Iterable[tuple[str, dict]], partitions: dict[str, bool] | None) -> None:
        """Before submitting: no ``SET_ME`` may be left, and a job requesting GPUs must go to a
        partition with GPUs. ``gpu_jobs``: (rule name, resources) of the submitted jobs that request
        GPUs; ``partitions``: {name: has GPUs} from sinfo (the default one marked ``*``), or None."""
        left = self.placeholders()
        if left:
            raise ClusterConfigError(
                f"config key(s) {', '.join(left)} still hold the placeholder {PLACEHOLDER!r}. Set them for your "
                "cluster (a partition name from `sinfo -s`, your account from `sacctmgr show assoc user=$USER`), "
                "or to null for the cluster default / none, in config/paper.yaml or an extra --configfile overlay."
            )
        if not partitions:
            return
        default = next((p[:-1] for p in partitions if p.endswith("*")), None)
        clean = {p.rstrip("*"): has for p, has in partitions.items()}
        for rule, res in gpu_jobs:
            part = res.get("slurm_partition") or default
            if part in clean and not clean[part]:
                key = "cluster.gpu_partition" + ("" if self.section["gpu_partition"] else
                                                 " (now null: GPU jobs go to cluster.partition, or to the default "
                                                 "partition when that is null too)")
                raise ClusterConfigError(
                    f"rule {rule} requests {res['gpu']} GPU(s) in partition {part!r}, which has no GPUs according "
                    f"to sinfo. Set config key {key} to a partition with GPUs "
                    f"({', '.join(p for p, has in clean.items() if has) or 'sinfo lists none'}), or set "
                    "cluster.resources.<group>.gpus to 0 to run on CPUs."
                )


def sinfo_partitions() -> dict[str, bool] | None:
    """{partition: has GPU gres} from ``sinfo`` (the default partition keeps its ``*``), or None
    when sinfo cannot tell."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %G"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    parts: dict[str, bool] = {}
    for line in out.stdout.splitlines():
        name, _, gres = line.strip().partition(" ")
        if name:
            parts[name] = parts.get(name, False) or "gpu" in gres
    return parts
