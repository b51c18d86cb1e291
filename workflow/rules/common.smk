# Shared helpers for the rules: config sections as JSON params, result paths, cluster resources.
import json
import os
import shutil
import subprocess

from snakemake.exceptions import WorkflowError

RESULTS = os.path.normpath(config["results_dir"])  # every output lives under here (config key results_dir)
LOGS = os.path.normpath(config["logs_dir"])  # every rule's log goes to f"{LOGS}/<track>/<name>.log"
TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"


def params_json(section: dict, *keys, **extra) -> str:
    """The keys of a config section that a rule depends on, as JSON (so editing another
    key does not rerun the rule)."""
    out = {k: section[k] for k in keys}
    out.update(extra)
    return json.dumps(out, sort_keys=True)


# ------------------------------------------------------------------------------ cluster (SLURM)
# How a rule asks for cluster resources. Every compute rule belongs to a *group* of
# config.yaml `cluster.resources` (train, sudoku_train, probe, eval, cpu, light, or a new one added
# to config.yaml, config/paper.yaml and .ci/ci_slurm.yaml), and writes, e.g. for text training,
#
#     (rule text_train)
#         threads: rule_threads("train")
#         resources: **slurm_resources("train")
#         retries: RETRIES
#         shell: train_launcher("train") + "text-train --threads {threads} ..."
#
# and light rules (data generation, tables, figures) go into `localrules:` and use
# `resources: **slurm_resources("light")` (only mem_mb/runtime, for local scheduling).
# Mapping to sbatch (snakemake-executor-plugin-slurm 2.8.0, see slurm/README.md):
#   gpus N > 0   -> gpu=N (--gpus=N), with cluster.gpu_model -> --gpus=<model>:N,
#                   cluster.constraint -> -C, partition cluster.gpu_partition (null: cluster.partition)
#   gpus 0       -> no GPU request; partition cluster.partition
#   (only train_launcher() turns N > 1 GPUs into N processes; a rule of another group gets N GPUs
#   in one process and must use them itself)
#   a null partition/account/qos is not sent (the cluster's default partition, no account/QoS)
#   mem_mb -> --mem, runtime (minutes) -> -t, cpus_per_task = threads (= cpus, null: top-level `threads`) -> -c
# A value "SET_ME" (config/paper.yaml's placeholders) is passed through for dry runs; submitting
# to a cluster with one left stops in cluster_preflight() with an error naming the key.
PLACEHOLDER = "SET_ME"
CLUSTER = config["cluster"]
RETRIES = CLUSTER["retries"]  # for the `retries` directive of cluster rules; None = snakemake --retries (profile: 1)
CLUSTER_NAME_KEYS = ("partition", "gpu_partition", "account", "qos", "gpu_model", "constraint")


def _group(group: str) -> dict:
    groups = CLUSTER.get("resources") or {}
    if group not in groups:
        raise WorkflowError(
            f"config key cluster.resources.{group} is missing: the rules of group '{group}' need it; "
            f"the config defines {sorted(groups)}. Add cluster.resources.{group}: "
            "{gpus: N, cpus: N|null, mem_mb: N, runtime: MINUTES} to config.yaml and config/paper.yaml."
        )
    g = groups[group]
    for key in ("gpus", "mem_mb", "runtime"):
        if g.get(key) is None:
            raise WorkflowError(f"config key cluster.resources.{group}.{key} is missing or null; it is required.")
    return g


def group_gpus(group: str) -> int:
    return int(_group(group)["gpus"])


def rule_threads(group: str) -> int:
    """The rule's threads (= sbatch --cpus-per-task): cluster.resources.<group>.cpus, else `threads`."""
    cpus = _group(group).get("cpus")
    return int(cpus if cpus is not None else config["threads"])


def slurm_resources(group: str) -> dict:
    """The `resources:` of a rule of ``group`` (see the comment above)."""
    g = _group(group)
    res = {"mem_mb": int(g["mem_mb"]), "runtime": int(g["runtime"])}
    if group == "light":  # local rules: never submitted
        return res
    gpus = int(g["gpus"])
    # = the rule's threads, which the plugin would send anyway; explicit so that a dry run (which
    # caps threads at its 1 core) shows what sbatch gets
    res["cpus_per_task"] = rule_threads(group)
    partition = (CLUSTER["gpu_partition"] or CLUSTER["partition"]) if gpus > 0 else CLUSTER["partition"]
    if partition:
        res["slurm_partition"] = partition
    if CLUSTER["account"]:
        res["slurm_account"] = CLUSTER["account"]
    if CLUSTER["qos"]:
        res["qos"] = CLUSTER["qos"]
    if gpus > 0:
        res["gpu"] = gpus
        if CLUSTER["gpu_model"]:
            res["gpu_model"] = CLUSTER["gpu_model"]
        if CLUSTER["constraint"]:
            res["constraint"] = CLUSTER["constraint"]
    return res


def train_launcher(group: str) -> str:
    """The command prefix of a training rule: ``rm-core`` for 0 or 1 GPU (one process; on one GPU
    accelerate picks it up by itself), ``accelerate launch`` with one process per GPU otherwise
    (data parallel; each process draws its own batch of ``batch_size``). Port 0: a free port, so
    two jobs on one node do not collide."""
    n = group_gpus(group)
    if n <= 1:
        return "rm-core "
    return (f"accelerate launch --multi_gpu --num_processes {n} --num_machines 1 --mixed_precision no "
            "--dynamo_backend no --main_process_port 0 -m rm_core.cli ")


def _placeholders() -> list[str]:
    return [f"cluster.{k}" for k in CLUSTER_NAME_KEYS if CLUSTER.get(k) == PLACEHOLDER]


def _partitions_with_gpus() -> dict | None:
    """{partition: has GPU gres} from sinfo, or None when sinfo cannot tell."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %G"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    parts: dict = {}
    for line in out.stdout.splitlines():
        name, _, gres = line.strip().partition(" ")
        if name:
            parts[name] = parts.get(name, False) or "gpu" in gres
    return parts


def cluster_preflight(workflow) -> None:
    """Run from `onstart:` (real runs only, not dry runs, not inside cluster jobs). With a cluster
    executor: no "SET_ME" may be left, and a job requesting GPUs must go to a partition with GPUs."""
    if workflow.local_exec:
        return
    left = _placeholders()
    if left:
        raise WorkflowError(
            f"config key(s) {', '.join(left)} still hold the placeholder {PLACEHOLDER!r}. Set them for your "
            "cluster (a partition name from `sinfo -s`, your account from `sacctmgr show assoc user=$USER`), or to "
            "null for the cluster default / none, in config/paper.yaml or an extra --configfile overlay."
        )
    try:
        jobs = list(workflow.dag.needrun_jobs())
    except Exception:  # noqa: BLE001 - the check is advisory when the DAG API differs
        return
    gpu_jobs = [j for j in jobs if not j.is_local and int(j.resources.get("gpu", 0) or 0) > 0]
    if not gpu_jobs:
        return
    parts = _partitions_with_gpus()
    if not parts:
        return
    default = next((p[:-1] for p in parts if p.endswith("*")), None)
    clean = {p.rstrip("*"): has for p, has in parts.items()}
    for job in gpu_jobs:
        part = job.resources.get("slurm_partition") or default
        if part in clean and not clean[part]:
            key = "cluster.gpu_partition" + ("" if CLUSTER["gpu_partition"] else
                                             " (now null: GPU jobs go to cluster.partition, or to the default "
                                             "partition when that is null too)")
            raise WorkflowError(
                f"rule {job.rule.name} requests {job.resources['gpu']} GPU(s) in partition {part!r}, which has no "
                f"GPUs according to sinfo. Set config key {key} to a partition with GPUs "
                f"({', '.join(p for p, has in clean.items() if has) or 'sinfo lists none'}), or set "
                "cluster.resources.<group>.gpus to 0 to run on CPUs."
            )

