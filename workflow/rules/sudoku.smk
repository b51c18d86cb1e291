# Sudoku track (paper Table 2): data -> one training job per variant and seed -> eval -> table/figures.
SUDOKU = config["sudoku"]
SUDOKU_VARIANTS = list(SUDOKU["variants"])
SUDOKU_SEEDS = [int(s) for s in SUDOKU["seeds"]]
SD = f"{RESULTS}/sudoku"

SUDOKU_REPORT = {
    "table_md": f"{TABLES}/table2.md",
    "table_tex": f"{TABLES}/table2.tex",
    "table_csv": f"{TABLES}/table2.csv",
    "fig_traj_png": f"{FIGURES}/sudoku_trajectory.png",
    "fig_traj_pdf": f"{FIGURES}/sudoku_trajectory.pdf",
    "fig_turns_png": f"{FIGURES}/sudoku_turns.png",
    "fig_turns_pdf": f"{FIGURES}/sudoku_turns.pdf",
}
SUDOKU_OUTPUTS = list(SUDOKU_REPORT.values())
# What `snakemake --report` shows (captions: workflow/report/*.rst, relative to this file).
SUDOKU_IN_REPORT = {
    "table_csv": dict(caption="../report/table2.rst", category="Tables", subcategory="Table 2: Sudoku"),
    "fig_turns_png": dict(caption="../report/sudoku_turns.rst", category="Figures", subcategory="Sudoku"),
    "fig_traj_png": dict(caption="../report/sudoku_trajectory.rst", category="Figures", subcategory="Sudoku"),
}

# Board generation (seconds even at paper scale) and the table/figures run on the submit host.
localrules:
    sudoku_data,
    table2,


rule sudoku_data:
    output:
        train=f"{SD}/data/train.parquet",
        test=f"{SD}/data/test.parquet",
        val=f"{SD}/data/val.parquet",  # validation boards: choose settings here (bench/sudoku_sweep.py)
    params:
        cfg=params_json(SUDOKU, "box", "n_train", "n_test", "n_val", "test_wrong", "test_corruptions"),
        seed=config["seed"],
    resources:
        **slurm_resources("light"),
    log:
        f"{LOGS}/sudoku/data.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core sudoku-data --params {params.cfg:q} --seed {params.seed} "
        "--train {output.train} --test {output.test} --val {output.val} 2> {log}"


rule sudoku_train:
    input:
        train=rules.sudoku_data.output.train,
    output:
        model=f"{SD}/models/{{variant}}_s{{seed}}/model.safetensors",
        config=f"{SD}/models/{{variant}}_s{{seed}}/config.json",
        log=f"{SD}/models/{{variant}}_s{{seed}}/train_log.parquet",
    params:
        cfg=lambda w: params_json(SUDOKU, "box", "model", "train", rm=training_settings(SUDOKU["rm"]),
                                  variants={w.variant: SUDOKU["variants"][w.variant]}),
    wildcard_constraints:
        variant="|".join(SUDOKU_VARIANTS),
        seed="|".join(str(s) for s in SUDOKU_SEEDS),
    threads: rule_threads("sudoku_train")
    resources:
        **slurm_resources("sudoku_train"),
    retries: RETRIES
    log:
        f"{LOGS}/sudoku/train_{{variant}}_s{{seed}}.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        train_launcher("sudoku_train") + "sudoku-train --params {params.cfg:q} --threads {threads} --seed {wildcards.seed} "
        "--variant {wildcards.variant} --train {input.train} --model {output.model} 2> {log}"


rule sudoku_eval:
    input:
        model=rules.sudoku_train.output.model,
        test=rules.sudoku_data.output.test,
    output:
        metrics=f"{SD}/eval/{{variant}}_s{{seed}}.parquet",
        trajectories=f"{SD}/eval/{{variant}}_s{{seed}}_trajectories.parquet",
        scaling=f"{SD}/eval/{{variant}}_s{{seed}}_scaling.parquet",
    params:
        cfg=lambda w: params_json(SUDOKU, "box", "rm", "eval_batch_size",
                                  variants={w.variant: SUDOKU["variants"][w.variant]}),
    wildcard_constraints:
        variant="|".join(SUDOKU_VARIANTS),
        seed="|".join(str(s) for s in SUDOKU_SEEDS),
    threads: rule_threads("cpu")
    resources:
        **slurm_resources("cpu"),  # rm_core's Sudoku evaluation runs on the CPU
    retries: RETRIES
    log:
        f"{LOGS}/sudoku/eval_{{variant}}_s{{seed}}.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core sudoku-eval --params {params.cfg:q} --threads {threads} --variant {wildcards.variant} "
        "--model {input.model} --test {input.test} --metrics {output.metrics} "
        "--trajectories {output.trajectories} --scaling {output.scaling} 2> {log}"


rule table2:
    input:
        metrics=expand(f"{SD}/eval/{{variant}}_s{{seed}}.parquet", variant=SUDOKU_VARIANTS, seed=SUDOKU_SEEDS),
        scaling=expand(f"{SD}/eval/{{variant}}_s{{seed}}_scaling.parquet", variant=SUDOKU_VARIANTS, seed=SUDOKU_SEEDS),
        trajectories=f"{SD}/eval/{SUDOKU_VARIANTS[-1]}_s{SUDOKU_SEEDS[0]}_trajectories.parquet",
    output:
        **{k: report(v, **SUDOKU_IN_REPORT[k]) if k in SUDOKU_IN_REPORT else v for k, v in SUDOKU_REPORT.items()},
    params:
        cfg=params_json(SUDOKU, "box", "n_test", "test_wrong", "test_corruptions", "rm", "train"),
        scale=config["scale"],
    resources:
        **slurm_resources("light"),
    log:
        f"{LOGS}/sudoku/table2.log",
    conda:
        "../../envs/rm_core.yaml"
    shell:
        "rm-core sudoku-report --params {params.cfg:q} --scale {params.scale} --metrics {input.metrics} "
        "--scaling {input.scaling} --trajectories {input.trajectories} --table {output.table_md} "
        "--fig-trajectory {output.fig_traj_png} --fig-scaling {output.fig_turns_png} 2> {log}"
