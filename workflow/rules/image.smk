# Image-editing track (paper Table 1): data -> VQ -> token grids -> base -> vanilla SFT and RM
# -> eval per model -> Table 1 + figure. Same rules at both scales: config `image` differs in values
# (mini: procedural scenes, a patch VQ and a SmallTransformer pre-trained here; paper: ImgEdit and
# the Lumina-DiMOO checkpoint with its VQ). The paper-scale inputs (ImgEdit, the checkpoint) are
# config paths, not rule inputs, so the DAG is complete before they exist; each stage stops with a
# message naming what is missing.
IMAGE = config["image"]
IM = f"{RESULTS}/image"
IMAGE_MINI = IMAGE["model"]["kind"] == "small"
IMAGE_SEEDS = [int(s) for s in IMAGE["seeds"]]
# the base, then SFT and RM once per training seed (sft_s0, rm_s0, ...): Table 1 gives the mean
# over seeds with a bootstrap interval over seeds and edits
IMAGE_MODELS = ["base"] + [f"{m}_s{s}" for m in ("sft", "rm") for s in IMAGE_SEEDS]
# The mini base is trained here (training resources); the paper base is the published checkpoint,
# only checked (CPU resources). Paper-scale VQ encoding wants a GPU.
IMAGE_BASE_GROUP = "train" if IMAGE_MINI else "cpu"
IMAGE_TOKENS_GROUP = "cpu" if IMAGE_MINI else "eval"
IMAGE_DATA_OUT = {"edits": f"{IM}/data/edits.parquet"}
IMAGE_TOKENS_OUT = {"edits": f"{IM}/tokens/edits.parquet", "layout": f"{IM}/tokens/layout.json"}
if IMAGE_MINI:  # the base's pre-training pool
    IMAGE_DATA_OUT["pool"] = f"{IM}/data/base.parquet"
    IMAGE_TOKENS_OUT["pool"] = f"{IM}/tokens/base.parquet"

IMAGE_REPORT = {
    "table_md": f"{TABLES}/table1.md",
    "table_tex": f"{TABLES}/table1.tex",
    "table_csv": f"{TABLES}/table1.csv",
    "fig_png": f"{FIGURES}/image_edits.png",
    "fig_pdf": f"{FIGURES}/image_edits.pdf",
}
IMAGE_OUTPUTS = list(IMAGE_REPORT.values())
IMAGE_IN_REPORT = {
    "table_csv": dict(caption="../report/table1.rst", category="Tables", subcategory="Table 1: image editing"),
    "fig_png": dict(caption="../report/image_edits.rst", category="Figures", subcategory="Image editing"),
}

localrules:
    table1,
    image_validation,


rule image_data:
    input:
        **fetched("imgedit"),
    output:
        **IMAGE_DATA_OUT,
    params:
        cfg=params_json(IMAGE, "data", "model"),
        seed=config["seed"],
        pool=lambda w, output: f"--pool {output.pool}" if IMAGE_MINI else "",
    threads: rule_threads("cpu")
    resources:
        **slurm_resources("cpu"),
    retries: RETRIES
    log:
        f"{LOGS}/image/data.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core image-data --params {params.cfg:q} --threads {threads} --seed {params.seed} "
        "--edits {output.edits} {params.pool} 2> {log}"


rule image_vq:
    input:
        **fetched("dimoo"),
        edits=rules.image_data.output.edits,
    output:
        config=f"{IM}/vq/config.json",
    params:
        cfg=params_json(IMAGE, "data", "vq", "model"),
        seed=config["seed"],
    threads: rule_threads("cpu")
    resources:
        **slurm_resources("cpu"),
    retries: RETRIES
    log:
        f"{LOGS}/image/vq.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core image-vq --params {params.cfg:q} --threads {threads} --seed {params.seed} "
        "--edits {input.edits} --vq {output.config} 2> {log}"


rule image_tokens:
    input:
        **IMAGE_DATA_OUT,
        vq=rules.image_vq.output.config,
    output:
        **IMAGE_TOKENS_OUT,
    params:
        cfg=params_json(IMAGE, "data", "vq", "text", "model"),
    threads: rule_threads(IMAGE_TOKENS_GROUP)
    resources:
        **slurm_resources(IMAGE_TOKENS_GROUP),
    retries: RETRIES
    log:
        f"{LOGS}/image/tokens.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core image-tokens --params {params.cfg:q} --threads {threads} --edits {input.edits} "
        "--vq {input.vq} --tokens {output.edits} --layout {output.layout} 2> {log}"


rule image_base:
    input:
        **IMAGE_TOKENS_OUT,
    output:
        run=f"{IM}/models/base/run.json",
    params:
        cfg=params_json(IMAGE, "model", "text", "base", "sft", "cfg_dropout"),
        seed=config["seed"],
    priority: 5  # the head of the image chain: before the Sudoku models, after the text base
    threads: rule_threads(IMAGE_BASE_GROUP)
    resources:
        **slurm_resources(IMAGE_BASE_GROUP),
    retries: RETRIES
    log:
        f"{LOGS}/image/base.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core image-base --params {params.cfg:q} --threads {threads} --seed {params.seed} "
        "--tokens {input.edits} --run {output.run} 2> {log}"


# SFT and RM: the same training edits and the same `image.train` section (steps x batch), both from the base.
rule image_train:
    input:
        **IMAGE_TOKENS_OUT,
        base=rules.image_base.output.run,
    output:
        run=f"{IM}/models/{{which}}_s{{seed}}/run.json",
    params:
        cfg=lambda w: params_json(IMAGE, "model", "text", "train", "curriculum", "cfg_dropout",
                                  **({"sft": IMAGE["sft"]} if w.which == "sft" else {"rm": training_settings(IMAGE["rm"])})),
    wildcard_constraints:
        which="sft|rm",
        seed=r"\d+",
    threads: rule_threads("train")
    resources:
        **slurm_resources("train"),
    retries: RETRIES
    log:
        f"{LOGS}/image/train_{{which}}_s{{seed}}.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        train_launcher("train") + "image-train --params {params.cfg:q} --threads {threads} --which {wildcards.which} "
        "--seed {wildcards.seed} --tokens {input.edits} --base {input.base} --run {output.run} 2> {log}"


rule image_eval:
    input:
        **IMAGE_DATA_OUT,
        **{f"tok_{k}": v for k, v in IMAGE_TOKENS_OUT.items()},
        vq=rules.image_vq.output.config,
        run=f"{IM}/models/{{model}}/run.json",
    output:
        metrics=f"{IM}/{{evaldir}}/{{model}}.parquet",
        outputs=f"{IM}/{{evaldir}}/{{model}}_outputs.parquet",
    params:
        cfg=params_json(IMAGE, "data", "model", "text", "rm", "eval"),
        split=lambda w: EVAL_SPLIT[w.evaldir],
        which=lambda w: w.model.split("_s")[0],  # base | sft | rm
    wildcard_constraints:
        model="|".join(IMAGE_MODELS),
        evaldir="|".join(EVAL_SPLIT),
    threads: rule_threads("eval")
    resources:
        **slurm_resources("eval"),
    retries: RETRIES
    log:
        f"{LOGS}/image/{{evaldir}}_{{model}}.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core image-eval --params {params.cfg:q} --threads {threads} --which {params.which} "
        "--run {input.run} --edits {input.edits} --tokens {input.tok_edits} --vq {input.vq} "
        "--metrics {output.metrics} --outputs {output.outputs} --split {params.split} 2> {log}"


rule table1:
    input:
        **IMAGE_DATA_OUT,
        tok_edits=IMAGE_TOKENS_OUT["edits"],
        layout=IMAGE_TOKENS_OUT["layout"],
        vq=rules.image_vq.output.config,
        metrics=expand(f"{IM}/eval/{{model}}.parquet", model=IMAGE_MODELS),
        outputs=expand(f"{IM}/eval/{{model}}_outputs.parquet", model=IMAGE_MODELS),
    output:
        **{k: report(v, **IMAGE_IN_REPORT[k]) if k in IMAGE_IN_REPORT else v for k, v in IMAGE_REPORT.items()},
    params:
        cfg=params_json(IMAGE, "data", "model", "text", "base", "train", "rm", "eval"),
        scale=config["scale"],
    resources:
        **slurm_resources("light"),
    log:
        f"{LOGS}/image/table1.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core image-report --params {params.cfg:q} --scale {params.scale} --metrics {input.metrics} "
        "--outputs {input.outputs} --edits {input.edits} --tokens {input.tok_edits} --vq {input.vq} "
        "--table {output.table_md} --figure {output.fig_png} 2> {log}"


# `snakemake image_validation`: every model on the validation edits (not part of `all`); the table
# every choice of image settings is made on.
rule image_validation:
    input:
        metrics=expand(f"{IM}/eval_val/{{model}}.parquet", model=IMAGE_MODELS),
    output:
        table=f"{TABLES}/validation/image_val.md",
        csv=f"{TABLES}/validation/image_val.csv",
    params:
        cfg=params_json(IMAGE, "eval"),
        scale=config["scale"],
    resources:
        **slurm_resources("light"),
    log:
        f"{LOGS}/image/validation.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core image-validation --params {params.cfg:q} --scale {params.scale} --metrics {input.metrics} "
        "--table {output.table} 2> {log}"
