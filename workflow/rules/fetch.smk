# Fetch rules (paper scale): download what config/paper.yaml reads when it is not there yet, at
# pinned revisions, resumable and checked (rm_core/fetch.py). Local rules: they run where snakemake
# runs (the submit host has the network; compute nodes may not). Which fetches exist comes from the
# config (rm_core.fetch.plan): the mini config fetches nothing, so these rules are not even defined.
# Each rule's output is a marker (or the file itself) that the first consuming rule takes as input,
# so a dry run lists the fetch jobs first.
import sys

sys.path.insert(0, workflow.basedir)  # rm_core.fetch without an install (stdlib-only at import)
from rm_core.fetch import UNPACK_MARKER, marker_path, plan as fetch_plan  # noqa: E402

FETCH = fetch_plan(config)
FETCH_OUT = {name: marker_path(FETCH[name]["dest"]) for name in ("llada", "dimoo", "math_train", "imgedit")
             if name in FETCH}
if "imgedit" in FETCH:
    FETCH_OUT["imgedit_unpacked"] = marker_path(FETCH["imgedit"]["unpack_root"], UNPACK_MARKER)
if "benchmarks" in FETCH:
    FETCH_OUT.update({f"bench_{k}": os.path.normpath(v["dest"]) for k, v in FETCH["benchmarks"].items()})

# fetched("llada", ...): named inputs for a consuming rule, the outputs of these fetches ({} when none)
fetched = lambda *names: {f"fetched_{k}": v for k, v in FETCH_OUT.items() if k in names or k.split("_", 1)[0] in names}  # noqa: E731


if "llada" in FETCH:

    localrules:
        fetch_llada,

    rule fetch_llada:
        output:
            marker=FETCH_OUT["llada"],
        params:
            spec=json.dumps(FETCH["llada"], sort_keys=True),
        resources:
            **slurm_resources("light"),
        log:
            f"{LOGS}/fetch/llada.log",
        conda:
            "../../envs/rm_core.yaml"
        shell:
            "rm-core fetch --params {params.spec:q} --kind hub --marker {output.marker} 2> {log}"


if "dimoo" in FETCH:

    localrules:
        fetch_dimoo,

    rule fetch_dimoo:
        output:
            marker=FETCH_OUT["dimoo"],
        params:
            spec=json.dumps(FETCH["dimoo"], sort_keys=True),
        resources:
            **slurm_resources("light"),
        log:
            f"{LOGS}/fetch/dimoo.log",
        conda:
            "../../envs/rm_core.yaml"
        shell:
            "rm-core fetch --params {params.spec:q} --kind hub --marker {output.marker} 2> {log}"


if "math_train" in FETCH:

    localrules:
        fetch_math_train,

    rule fetch_math_train:
        output:
            marker=FETCH_OUT["math_train"],
        params:
            spec=json.dumps(FETCH["math_train"], sort_keys=True),
        resources:
            **slurm_resources("light"),
        log:
            f"{LOGS}/fetch/math_train.log",
        conda:
            "../../envs/rm_core.yaml"
        shell:
            "rm-core fetch --params {params.spec:q} --kind hub --marker {output.marker} 2> {log}"


if "imgedit" in FETCH:

    localrules:
        fetch_imgedit,

    rule fetch_imgedit:
        output:
            marker=FETCH_OUT["imgedit"],
        params:
            spec=json.dumps(FETCH["imgedit"], sort_keys=True),
        resources:
            **slurm_resources("light"),
        log:
            f"{LOGS}/fetch/imgedit.log",
        conda:
            "../../envs/rm_core.yaml"
        shell:
            "rm-core fetch --params {params.spec:q} --kind hub --marker {output.marker} 2> {log}"


if "imgedit" in FETCH:

    localrules:
        fetch_imgedit_unpack,

    rule fetch_imgedit_unpack:
        input:
            FETCH_OUT["imgedit"],
        output:
            marker=FETCH_OUT["imgedit_unpacked"],
        params:
            spec=json.dumps(FETCH["imgedit"], sort_keys=True),
        resources:
            **slurm_resources("light"),
        log:
            f"{LOGS}/fetch/imgedit_unpack.log",
        conda:
            "../../envs/rm_core.yaml"
        shell:
            "rm-core fetch --params {params.spec:q} --kind unpack --marker {output.marker} 2> {log}"


if "benchmarks" in FETCH:

    localrules:
        fetch_benchmarks,

    rule fetch_benchmarks:
        output:
            [FETCH_OUT[f"bench_{k}"] for k in sorted(FETCH["benchmarks"])],
        params:
            spec=json.dumps(FETCH["benchmarks"], sort_keys=True),
        resources:
            **slurm_resources("light"),
        log:
            f"{LOGS}/fetch/benchmarks.log",
        conda:
            "../../envs/rm_core.yaml"
        shell:
            "rm-core fetch --params {params.spec:q} --kind url 2> {log}"
