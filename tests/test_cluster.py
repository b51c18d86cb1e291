"""The cluster side of the workflow, without a cluster: the SLURM profile's dry runs at both
scales, the resource helper's errors, the paper config's completeness, the training launcher,
config-driven retries, and (only where a SLURM controller answers) the GPU-partition check.

Atomic outputs (what makes `--rerun-incomplete` safe) are tested in test_io_tables.py, and a
killed-and-resumed training run equals an uninterrupted one in test_train_resume.py.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_copy import run_snakemake

ROOT = Path(__file__).resolve().parents[1]
PAPER = "config/paper.yaml"


snakemake = run_snakemake


def overlay(workdir, data, name="overlay.yaml"):
    (workdir / name).write_text(yaml.safe_dump(data))
    return name


def jobs_of(out: str) -> list[dict]:
    """The job blocks of a dry run: rule name and its resources as a dict."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", out):
        m = re.match(r"rule (\w+):", block)
        if not m:
            continue
        res = {}
        rm = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rm:
            for kv in rm.group(1).split(", "):
                k, _, v = kv.partition("=")
                res[k.strip()] = v.strip()
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        jobs.append({"rule": m.group(1), "resources": res, "shell": shell.group(1) if shell else ""})
    return jobs


def local_rules(workdir) -> set[str]:
    text = "".join(p.read_text() for p in (workdir / "workflow/rules").glob("*.smk"))
    names = set()
    for block in re.findall(r"^[ \t]*localrules:\n((?:\s+\w+,?\n)+)", text, re.M):  # also inside an if block
        names.update(re.findall(r"\w+", block))
    return names


def test_paper_dry_run_lists_every_rule_with_cluster_resources(workdir):
    """The cluster command verbatim, `snakemake --profile slurm all`: the profile loads the paper config."""
    r = snakemake(["-n", "--profile", "slurm", "all"], workdir)
    assert r.returncode == 0, r.out[-3000:]
    jobs = jobs_of(r.stdout)
    listed = {j["rule"] for j in jobs}
    rules = set(snakemake(["--list-rules", "--configfile", PAPER], workdir).stdout.split())
    # every rule but the validation ones (their own target, `snakemake validation`, not part of `all`)
    rules -= {"validation", "text_validation", "image_validation"}
    assert rules and rules <= listed, f"rules missing from the paper dry run: {sorted(rules - listed)}"
    val = snakemake(["-n", "--profile", "slurm", "validation"], workdir)
    assert val.returncode == 0, val.out[-3000:]
    assert {"text_validation", "image_validation", "text_eval", "image_eval"} <= {j["rule"] for j in jobs_of(val.stdout)}
    local = local_rules(workdir)
    for j in jobs:
        if j["rule"] == "all":
            continue
        for key in ("mem_mb", "runtime"):
            assert key in j["resources"], (j["rule"], j["resources"])
        if j["rule"] not in local:  # submitted: partition/account placeholders and the cpus are visible
            assert j["resources"].get("slurm_account") == "SET_ME", (j["rule"], j["resources"])
            assert int(j["resources"]["cpus_per_task"]) >= 1
    train = [j for j in jobs if j["rule"] == "sudoku_train"]
    assert len(train) == 8  # 4 variants x 2 seeds (config/paper.yaml sudoku.seeds)
    for j in train:
        assert j["resources"]["gpu"] == "1" and j["resources"]["mem_mb"] == "32000"
        assert j["resources"]["slurm_partition"] == "SET_ME"
        assert j["shell"].startswith("rm-core sudoku-train")  # one GPU: a plain process
    # Table 1 and Table 3 training: 2 GPUs per job through accelerate launch, as in the paper
    for rule in ("image_train", "text_train"):
        for j in (j for j in jobs if j["rule"] == rule):
            assert j["resources"]["gpu"] == "2", (rule, j["resources"])
            assert j["shell"].startswith("accelerate launch --multi_gpu --num_processes 2"), j["shell"][:80]
    assert {"image_data", "image_tokens", "image_base", "image_eval", "table1", "table3_4", "table2"} <= listed
    # the paper's model and data
    assert '"box": [3, 3]' in r.stdout and '"d_model": 128' in r.stdout and '"test_wrong": [4, 20]' in r.stdout


def test_profile_config_equals_explicit_paper_config_and_mini_is_one_flag_away(workdir):
    """`--profile slurm all` == `--profile slurm --configfile=config/paper.yaml all` (with `=`, the target
    after the option is not read as a second config file); `--configfile=config.yaml` is the mini DAG."""
    rules = lambda out: sorted(j["rule"] for j in jobs_of(out))  # noqa: E731
    profile = snakemake(["-n", "--profile", "slurm", "all"], workdir)
    explicit = snakemake(["-n", "--profile", "slurm", f"--configfile={PAPER}", "all"], workdir)
    mini = snakemake(["-n", "--profile", "slurm", "--configfile=config.yaml", "all"], workdir)
    for r in (profile, explicit, mini):
        assert r.returncode == 0, r.out[-3000:]
    assert rules(profile.stdout) == rules(explicit.stdout) and "image_train" in rules(profile.stdout)
    assert '"box": [3, 3]' in profile.stdout and '"box": [3, 3]' not in mini.stdout
    assert not (ROOT / "all").exists()  # no config overlay named `all` at the root any more


def test_mini_dry_run_requests_no_gpu_and_no_partition(workdir):
    r = snakemake(["-n", "--profile", "slurm", "all", "--configfile=config.yaml"], workdir)
    assert r.returncode == 0, r.out[-3000:]
    jobs = jobs_of(r.stdout)
    assert {j["rule"] for j in jobs} >= {"sudoku_data", "sudoku_train", "sudoku_eval", "table2"}
    for j in jobs:
        assert not {"gpu", "gpu_model", "gres", "slurm_partition", "slurm_account"} & set(j["resources"]), j


def test_paper_yaml_sets_every_key_of_its_sections():
    """config/paper.yaml is loaded over config.yaml: a key it lacks silently keeps its mini value."""
    mini = yaml.safe_load((ROOT / "config.yaml").read_text())
    paper = yaml.safe_load((ROOT / PAPER).read_text())

    def leaves(d, prefix=""):
        out = set()
        for k, v in d.items():
            out |= leaves(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {prefix + k}
        return out

    missing = sorted(leaves(mini) - leaves(paper))
    covered = [k for k in missing if k.split(".")[0] in paper]
    assert not covered, f"config/paper.yaml lacks {covered} (its mini value would be used at paper scale)"
    assert paper["scale"] == "paper" and paper["cluster"]["resources"]["train"]["gpus"] == 2


def test_null_resource_and_missing_group_are_errors_naming_the_key(workdir):
    r = snakemake(["-n", "all", "--configfile",
                   overlay(workdir, {"cluster": {"resources": {"sudoku_train": {"mem_mb": None}}}})], workdir)
    assert r.returncode != 0 and "mem_mb" in r.out and "sudoku_train" in r.out, r.out[-2000:]
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    del cfg["cluster"]["resources"]["cpu"]
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    r = snakemake(["-n", "all"], workdir)
    assert r.returncode != 0 and "'cpu' is a required property" in r.out, r.out[-2000:]


def test_unknown_group_is_an_error_naming_the_key(workdir):
    smk = workdir / "workflow/rules/sudoku.smk"
    smk.write_text(smk.read_text().replace('slurm_resources("cpu")', 'slurm_resources("gpu_eval")'))
    r = snakemake(["-n", "all"], workdir)
    assert r.returncode != 0 and "cluster.resources.gpu_eval" in r.out, r.out[-2000:]


def test_placeholders_stop_a_cluster_run_before_anything_runs(workdir):
    target = "results/sudoku/data/train.parquet"  # a local rule: harmless should the check not fire
    r = snakemake(["--profile", "slurm", target, "--configfile", PAPER], workdir, timeout=120)
    assert r.returncode != 0
    for key in ("cluster.partition", "cluster.gpu_partition", "cluster.account"):
        assert key in r.out, r.out[-2000:]
    assert not (workdir / target).exists()


def test_multi_gpu_training_goes_through_accelerate_launch(workdir):
    two = overlay(workdir, {"cluster": {"resources": {"sudoku_train": {"gpus": 2}}}})
    r = snakemake(["-n", "--profile", "slurm", "all", "--configfile", PAPER, two], workdir)
    assert r.returncode == 0, r.out[-2000:]
    train = [j for j in jobs_of(r.stdout) if j["rule"] == "sudoku_train"]
    assert train and all(j["resources"]["gpu"] == "2" for j in train)
    assert all(j["shell"].startswith("accelerate launch --multi_gpu --num_processes 2 ") and
               " -m rm_core.cli sudoku-train " in j["shell"] for j in train)
    model = overlay(workdir, {"cluster": {"gpu_model": "h100", "gpu_partition": "gpu"}}, "model.yaml")
    r = snakemake(["-n", "--profile", "slurm", "all", "--configfile", PAPER, model], workdir)
    train = [j for j in jobs_of(r.stdout) if j["rule"] == "sudoku_train"]
    assert all(j["resources"]["gpu_model"] == "h100" and j["resources"]["slurm_partition"] == "gpu" for j in train)
    evals = [j for j in jobs_of(r.stdout) if j["rule"] == "sudoku_eval"]  # CPU jobs: the CPU partition
    assert evals and all(j["resources"]["slurm_partition"] == "SET_ME" and "gpu" not in j["resources"] for j in evals)


def test_rm_core_runs_as_a_module():
    r = subprocess.run([sys.executable, "-m", "rm_core.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "sudoku-train" in r.stdout


def test_failed_job_is_retried_per_config_key(workdir):
    """cluster.retries: a failing job is run 1 + retries times (here: a corrupt model file)."""
    res = workdir / "results/sudoku"
    for p in ("data/train.parquet", "data/test.parquet", "data/val.parquet", "models/rm_hr_s0/model.safetensors",
              "models/rm_hr_s0/config.json", "models/rm_hr_s0/train_log.parquet"):
        (res / p).parent.mkdir(parents=True, exist_ok=True)
        (res / p).write_text("not a real file")
    args = ["-c1", "results/sudoku/eval/rm_hr_s0.parquet", "--rerun-triggers", "mtime", "--configfile"]
    r = snakemake(args + [overlay(workdir, {"cluster": {"retries": 1}})], workdir)
    runs = re.compile(r"^(?:local)?rule sudoku_eval:", re.M)
    assert r.returncode != 0
    assert len(runs.findall(r.out)) == 2 and r.out.count("Trying to restart job") == 1, r.out[-3000:]
    r = snakemake(args + [overlay(workdir, {"cluster": {"retries": 0}})], workdir)
    assert r.returncode != 0 and len(runs.findall(r.out)) == 1 and "Trying to restart" not in r.out, r.out[-3000:]


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    r = subprocess.run(["sinfo", "-h", "-o", "%P %G"], capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and bool(r.stdout.strip()) and "gpu" not in r.stdout


@pytest.mark.skipif(not _slurm_up(), reason="needs a running GPU-less SLURM (.ci/slurm.sh up)")
def test_gpu_job_for_a_partition_without_gpus_is_refused_before_submission(workdir):
    gpu = overlay(workdir, {"cluster": {"resources": {"sudoku_train": {"gpus": 1}}}})
    r = snakemake(["--profile", "slurm", "results/sudoku/models/rm_hr_s0/model.safetensors", "--configfile", gpu],
                  workdir, timeout=120)
    assert r.returncode != 0
    assert "cluster.gpu_partition" in r.out and "has no GPUs" in r.out, r.out[-2000:]
    assert "submitted with SLURM jobid" not in r.out


# ------------------------------------------------------------- rm_core.cluster, without Snakemake
from rm_core.cluster import Cluster, ClusterConfigError  # noqa: E402


def _section(**over):
    s = {"partition": "cpu", "gpu_partition": "gpu", "account": "acc", "qos": None, "gpu_model": None,
         "constraint": None, "retries": 2,
         "resources": {"train": {"gpus": 2, "cpus": 8, "mem_mb": 64000, "runtime": 600},
                       "cpu": {"gpus": 0, "cpus": None, "mem_mb": 2000, "runtime": 30},
                       "light": {"gpus": 0, "cpus": None, "mem_mb": 1000, "runtime": 10}}}
    s.update(over)
    return s


def test_cluster_resources_map_groups_to_sbatch_keys():
    c = Cluster(_section(gpu_model="h100", constraint="hopper"), threads=3)
    assert c.resources("train") == {"mem_mb": 64000, "runtime": 600, "cpus_per_task": 8, "slurm_partition": "gpu",
                                    "slurm_account": "acc", "gpu": 2, "gpu_model": "h100", "constraint": "hopper"}
    assert c.resources("cpu") == {"mem_mb": 2000, "runtime": 30, "cpus_per_task": 3, "slurm_partition": "cpu",
                                  "slurm_account": "acc"}
    assert c.resources("light") == {"mem_mb": 1000, "runtime": 10}
    assert (c.threads("train"), c.threads("cpu"), c.retries) == (8, 3, 2)
    # no GPU partition: GPU jobs go to `partition`; nothing at all: no partition key (the default one)
    assert Cluster(_section(gpu_partition=None), 1).resources("train")["slurm_partition"] == "cpu"
    assert "slurm_partition" not in Cluster(_section(gpu_partition=None, partition=None), 1).resources("train")


def test_cluster_launcher_uses_accelerate_only_for_several_gpus():
    c = Cluster(_section(), threads=1)
    assert c.launcher("cpu") == "rm-core "
    assert c.launcher("train").startswith("accelerate launch --multi_gpu --num_processes 2 ")
    assert c.launcher("train").endswith(" -m rm_core.cli ")


def test_cluster_errors_name_the_key():
    with pytest.raises(ClusterConfigError, match=r"cluster\.resources\.eval is missing"):
        Cluster(_section(), 1).resources("eval")
    bad = _section()
    bad["resources"]["cpu"]["runtime"] = None
    with pytest.raises(ClusterConfigError, match=r"cluster\.resources\.cpu\.runtime"):
        Cluster(bad, 1).resources("cpu")
    with pytest.raises(ClusterConfigError, match=r"cluster\.partition, cluster\.account"):
        Cluster(_section(partition="SET_ME", account="SET_ME"), 1).preflight([], None)


def test_cluster_preflight_refuses_gpu_jobs_on_a_partition_without_gpus():
    c = Cluster(_section(gpu_partition=None, partition=None), 1)
    job = [("text_train", {"gpu": 2})]  # no partition: the cluster's default (marked *)
    with pytest.raises(ClusterConfigError, match=r"rule text_train requests 2 GPU\(s\) in partition 'debug'.*"
                                                 r"cluster\.gpu_partition \(now null"):
        c.preflight(job, {"debug*": False, "a100": True})
    c.preflight(job, {"debug": False, "a100*": True})  # default partition has GPUs: fine
    c.preflight(job, None)  # sinfo cannot tell: advisory only
    named = Cluster(_section(gpu_partition="cpu"), 1)
    with pytest.raises(ClusterConfigError, match=r"Set config key cluster\.gpu_partition to a partition with GPUs \(a100\)"):
        named.preflight([("sudoku_train", {"gpu": 1, "slurm_partition": "cpu"})], {"cpu*": False, "a100": True})
