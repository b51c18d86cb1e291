# Text track (paper Tables 3 and 4): data -> base -> top-k probe -> vanilla SFT and RM (per seed)
# -> lm-eval per model -> tables/figures. Same rules at both scales: config `text` differs in values
# (mini: a SmallTransformer pre-trained here on generated tasks; paper: LLaDA-8B-Instruct + benchmarks).
TEXT = config["text"]
TX = f"{RESULTS}/text"
TEXT_SEEDS = [int(s) for s in TEXT["seeds"]]
TEXT_FT = [f"{o}_s{s}" for o in ("sft", "rm") for s in TEXT_SEEDS]  # fine-tuned models
TEXT_LC = ["base"] + [f"sft_s{s}" for s in TEXT_SEEDS]  # decoded with low-confidence remasking
TEXT_RM = [f"rm_s{s}" for s in TEXT_SEEDS]  # decoded with Eq. 1 + History Reference
TEXT_MODELS = TEXT_LC + TEXT_RM
# The mini base is trained here (training resources); the paper base is the published checkpoint,
# only checked (CPU resources).
TEXT_BASE_GROUP = "train" if TEXT["backbone"]["kind"] == "small" else "cpu"

TEXT_REPORT = {
    "table3_md": f"{TABLES}/table3.md",
    "table3_tex": f"{TABLES}/table3.tex",
    "table3_csv": f"{TABLES}/table3.csv",
    "table4_md": f"{TABLES}/table4.md",
    "table4_tex": f"{TABLES}/table4.tex",
    "table4_csv": f"{TABLES}/table4.csv",
    "fig_turns_png": f"{FIGURES}/text_turns.png",
    "fig_turns_pdf": f"{FIGURES}/text_turns.pdf",
    "fig_traj_png": f"{FIGURES}/text_trajectory.png",
    "fig_traj_pdf": f"{FIGURES}/text_trajectory.pdf",
    "fig_traj_md": f"{FIGURES}/text_trajectory.md",
}
TEXT_OUTPUTS = list(TEXT_REPORT.values())
TEXT_IN_REPORT = {
    "table3_csv": dict(caption="../report/table3.rst", category="Tables", subcategory="Table 3: text"),
    "table4_csv": dict(caption="../report/table4.rst", category="Tables", subcategory="Table 4: math by subject"),
    "fig_turns_png": dict(caption="../report/text_turns.rst", category="Figures", subcategory="Text"),
    "fig_traj_png": dict(caption="../report/text_trajectory.rst", category="Figures", subcategory="Text"),
}

localrules:
    text_data,
    table3_4,
    text_validation,


rule text_data:
    input:
        **fetched("math_train", "bench"),
    output:
        pairs=f"{TX}/data/train_pairs.parquet",
        tasks=f"{TX}/data/tasks.json",
    params:
        cfg=params_json(TEXT, "tasks", "data"),
        seed=config["seed"],
    resources:
        **slurm_resources("light"),
    log:
        f"{LOGS}/text/data.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core text-data --params {params.cfg:q} --seed {params.seed} --pairs {output.pairs} --tasks {output.tasks} "
        "2> {log}"


rule text_base:
    input:
        **fetched("llada"),
        pairs=rules.text_data.output.pairs,
    output:
        ref=f"{TX}/models/base/model.json",
    params:
        cfg=params_json(TEXT, "backbone", "layout", "base"),
        seed=config["seed"],
    # the head of the DAG's longest chain (base -> probe -> RM -> eval): started first, so that with
    # -c2 it runs beside the Sudoku and image jobs (without it, the lean mini run started it last and
    # it ran 7.5 min alone on one core)
    priority: 10
    threads: rule_threads(TEXT_BASE_GROUP)
    resources:
        **slurm_resources(TEXT_BASE_GROUP),
    retries: RETRIES
    log:
        f"{LOGS}/text/base.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core text-base --params {params.cfg:q} --threads {threads} --seed {params.seed} "
        "--pairs {input.pairs} --ref {output.ref} 2> {log}"


rule text_probe:
    input:
        base=rules.text_base.output.ref,
        pairs=rules.text_data.output.pairs,
    output:
        topk=f"{TX}/probe/topk.parquet",
    params:
        cfg=params_json(TEXT, "backbone", "layout", "probe"),
    threads: rule_threads("probe")
    resources:
        **slurm_resources("probe"),
    retries: RETRIES
    log:
        f"{LOGS}/text/probe.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core text-probe --params {params.cfg:q} --threads {threads} --base {input.base} "
        "--pairs {input.pairs} --topk {output.topk} 2> {log}"


rule text_train:
    input:
        # RM also reads the probe cache; SFT does not wait for it
        unpack(lambda w: {"pairs": rules.text_data.output.pairs, "base": rules.text_base.output.ref,
                          **({"probe": rules.text_probe.output.topk} if w.objective == "rm" else {})}),
    output:
        ref=f"{TX}/models/{{objective}}_s{{seed}}/model.json",
    params:
        # SFT reads neither `rm` nor `probe`: editing them reruns RM only
        cfg=lambda w: (params_json(TEXT, "backbone", "layout", "finetune", "probe", "rm_mix",
                                   rm=training_settings(TEXT["rm"]))
                       if w.objective == "rm"
                       else params_json(TEXT, "backbone", "layout", "finetune")),
        probe=lambda w, input: f"--probe {input.probe}" if "probe" in input.keys() else "",
    wildcard_constraints:
        objective="sft|rm",
        seed="|".join(str(s) for s in TEXT_SEEDS),
    threads: rule_threads("train")
    resources:
        **slurm_resources("train"),
    retries: RETRIES
    log:
        f"{LOGS}/text/train_{{objective}}_s{{seed}}.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        train_launcher("train") + "text-train --params {params.cfg:q} --threads {threads} "
        "--objective {wildcards.objective} --seed {wildcards.seed} --pairs {input.pairs} --base {input.base} "
        "{params.probe} --ref {output.ref} 2> {log}"


rule text_eval:
    input:
        model=f"{TX}/models/{{model}}/model.json",
        tasks=rules.text_data.output.tasks,
    output:
        samples=f"{TX}/{{evaldir}}/{{model}}.parquet",
        summary=f"{TX}/{{evaldir}}/{{model}}.json",
    params:
        cfg=params_json(TEXT, "backbone", "layout", "eval"),
        split=lambda w: EVAL_SPLIT[w.evaldir],
    wildcard_constraints:
        model="|".join(TEXT_LC),
        evaldir="|".join(EVAL_SPLIT),
    threads: rule_threads("eval")
    resources:
        **slurm_resources("eval"),
    retries: RETRIES
    log:
        f"{LOGS}/text/{{evaldir}}_{{model}}.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core text-eval --params {params.cfg:q} --threads {threads} --model {input.model} --name {wildcards.model} "
        "--sampler low_confidence --tasks {input.tasks} --samples {output.samples} --summary {output.summary} "
        "--split {params.split} 2> {log}"


rule text_eval_rm:
    input:
        model=f"{TX}/models/{{model}}/model.json",
        tasks=rules.text_data.output.tasks,
    output:
        samples=f"{TX}/{{evaldir}}/{{model}}.parquet",
        summary=f"{TX}/{{evaldir}}/{{model}}.json",
        scaling=f"{TX}/{{evaldir}}/{{model}}_scaling.parquet",
        trajectories=f"{TX}/{{evaldir}}/{{model}}_trajectories.parquet",
    params:
        cfg=params_json(TEXT, "backbone", "layout", "eval", "rm"),
        split=lambda w: EVAL_SPLIT[w.evaldir],
    wildcard_constraints:
        model="|".join(TEXT_RM),
        evaldir="|".join(EVAL_SPLIT),
    threads: rule_threads("eval")
    resources:
        **slurm_resources("eval"),
    retries: RETRIES
    log:
        f"{LOGS}/text/{{evaldir}}_{{model}}.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core text-eval --params {params.cfg:q} --threads {threads} --model {input.model} --name {wildcards.model} "
        "--sampler rm --tasks {input.tasks} --samples {output.samples} --summary {output.summary} "
        "--scaling {output.scaling} --trajectories {output.trajectories} --split {params.split} 2> {log}"


rule table3_4:
    input:
        tasks=rules.text_data.output.tasks,
        summaries=expand(f"{TX}/eval/{{model}}.json", model=TEXT_MODELS),
        samples=expand(f"{TX}/eval/{{model}}.parquet", model=TEXT_MODELS),
        scaling=expand(f"{TX}/eval/{{model}}_scaling.parquet", model=TEXT_RM),
        trajectories=expand(f"{TX}/eval/{{model}}_trajectories.parquet", model=TEXT_RM),
        models=expand(f"{TX}/models/{{model}}/model.json", model=TEXT_MODELS),
    output:
        **{k: report(v, **TEXT_IN_REPORT[k]) if k in TEXT_IN_REPORT else v for k, v in TEXT_REPORT.items()},
    params:
        cfg=params_json(TEXT, "backbone", "layout", "finetune", "rm", "eval"),
        scale=config["scale"],
    resources:
        **slurm_resources("light"),
    log:
        f"{LOGS}/text/tables.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core text-report --params {params.cfg:q} --scale {params.scale} --tasks {input.tasks} "
        "--summaries {input.summaries} --samples {input.samples} --scaling {input.scaling} "
        "--trajectories {input.trajectories} --table3 {output.table3_md} --table4 {output.table4_md} "
        "--fig-scaling {output.fig_turns_png} --fig-trajectory {output.fig_traj_png} 2> {log}"


# `snakemake text_validation`: every model on the validation split (not part of `all`); the table
# every choice of text settings is made on.
rule text_validation:
    input:
        summaries=expand(f"{TX}/eval_val/{{model}}.json", model=TEXT_MODELS),
    output:
        table=f"{TABLES}/validation/text_val.md",
        csv=f"{TABLES}/validation/text_val.csv",
    params:
        scale=config["scale"],
    resources:
        **slurm_resources("light"),
    log:
        f"{LOGS}/text/validation.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core text-validation --scale {params.scale} --summaries {input.summaries} "
        "--table {output.table} 2> {log}"
