# Shared helpers for the rules: config sections as JSON params, result paths, cluster resources.
import json
import os

RESULTS = os.path.normpath(config["results_dir"])  # every output lives under here (config key results_dir)
LOGS = os.path.normpath(config["logs_dir"])  # every rule's log goes to f"{LOGS}/<track>/<name>.log"
TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"
# Evaluation folder -> split: <track>/eval/ feeds the tables (the test split, read once);
# <track>/eval_val/ the validation split, on which every choice of settings is made
# (`snakemake validation`, not part of `all`).
EVAL_SPLIT = {"eval": "test", "eval_val": "val"}


from rm_core.method import training_settings


def params_json(section: dict, *keys, **extra) -> str:
    """The keys of a config section that a rule depends on, as JSON (so editing another
    key does not rerun the rule)."""
    out = {k: section[k] for k in keys}
    out.update(extra)
    return json.dumps(out, sort_keys=True)


# ------------------------------------------------------------------------------ cluster (SLURM)
# Every compute rule belongs to a group of `cluster.resources`; rm_core/cluster.py maps a group to
# sbatch resources, threads and the training launcher (its docstring has the mapping), and is tested
# in tests/test_cluster.py. The names below are what the rules call.
from rm_core.cluster import Cluster, sinfo_partitions

CLUSTER = Cluster(config["cluster"], config["threads"])
RETRIES = CLUSTER.retries  # for the `retries` directive of cluster rules
slurm_resources = CLUSTER.resources
rule_threads = CLUSTER.threads
train_launcher = CLUSTER.launcher


def cluster_preflight(workflow) -> None:
    """Run from `onstart:` (real runs only, not dry runs, not inside cluster jobs): with a cluster
    executor, stop before submitting anything if the cluster config cannot work."""
    if workflow.local_exec:
        return
    if CLUSTER.placeholders():
        CLUSTER.preflight([], None)  # raises, naming the keys
    try:
        jobs = list(workflow.dag.needrun_jobs())
    except Exception:  # noqa: BLE001 - the GPU-partition check is advisory when the DAG API differs
        return
    gpu_jobs = [(j.rule.name, dict(j.resources)) for j in jobs
                if not j.is_local and int(j.resources.get("gpu", 0) or 0) > 0]
    if gpu_jobs:
        CLUSTER.preflight(gpu_jobs, sinfo_partitions())
