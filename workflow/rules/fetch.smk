# Fetch rules (paper scale): download what config/paper.yaml reads when it is not there yet, at
# pinned revisions, resumable and checked (rm_core/fetch.py). Local rules: they run where snakemake
# runs (the submit host has the network; compute nodes may not). Which fetches exist comes from the
# config (rm_core.fetch.plan): the mini config fetches nothing, so these rules are not even defined.
# Each rule's output is a marker (or the file itself) that the first consuming rule takes as input,
# so a dry run lists the fetch jobs first.
import sys

sys.path.insert(0, workflow.basedir)  # rm_core.fetch without an install (stdlib-only at import)
from rm_core.fetch import MARKER, UNPACK_MARKER, marker_path, plan as fetch_plan  # noqa: E402

FETCH = fetch_plan(config)
FETCH_OUT = {name: marker_path(FETCH[name]["dest"]) for name in ("llada", "dimoo", "math_train", "imgedit")
             if name in FETCH}
if "imgedit" in FETCH:
    FETCH_OUT["imgedit_unpacked"] = marker_path(FETCH["imgedit"]["unpack_root"], UNPACK_MARKER)
if "benchmarks" in FETCH:
    FETCH_OUT.update({f"bench_{k}": os.path.normpath(v["dest"]) for k, v in FETCH["benchmarks"].items()})


def fetched(*names) -> dict:
    """Named inputs for a consuming rule: the outputs of these fetches ({} when nothing is fetched)."""
    return {f"fetched_{k}": v for k, v in FETCH_OUT.items() if k in names or k.split("_", 1)[0] in names}


for _name in [n for n in ("llada", "dimoo", "math_train", "imgedit") if n in FETCH]:

    rule:
        name:
            f"fetch_{_name}"
        output:
            marker=FETCH_OUT[_name],
        params:
            spec=json.dumps(FETCH[_name], sort_keys=True),
        localrule: True
        resources:
            **slurm_resources("light"),
        log:
            f"{LOGS}/fetch/{_name}.log",
        conda:
            "../../envs/rm_core.yaml"
        shell:
            "python -m rm_core.fetch hub --params {params.spec:q} --marker {output.marker} 2> {log}"


if "imgedit" in FETCH:

    rule fetch_imgedit_unpack:
        input:
            FETCH_OUT["imgedit"],
        output:
            marker=FETCH_OUT["imgedit_unpacked"],
        params:
            spec=json.dumps(FETCH["imgedit"], sort_keys=True),
        localrule: True
        resources:
            **slurm_resources("light"),
        log:
            f"{LOGS}/fetch/imgedit_unpack.log",
        conda:
            "../../envs/rm_core.yaml"
        shell:
            "python -m rm_core.fetch unpack --params {params.spec:q} --marker {output.marker} 2> {log}"


if "benchmarks" in FETCH:

    rule fetch_benchmarks:
        output:
            [FETCH_OUT[f"bench_{k}"] for k in sorted(FETCH["benchmarks"])],
        params:
            spec=json.dumps(FETCH["benchmarks"], sort_keys=True),
        localrule: True
        resources:
            **slurm_resources("light"),
        log:
            f"{LOGS}/fetch/benchmarks.log",
        conda:
            "../../envs/rm_core.yaml"
        shell:
            "python -m rm_core.fetch url --params {params.spec:q} 2> {log}"
