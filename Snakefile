# Reflective Masking, reproduced. `snakemake -c2 all` runs the default (mini) scale;
# `snakemake --profile slurm all` the paper scale on a SLURM cluster (the profile loads
# config/paper.yaml over config.yaml). See README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")
# each track's `rm` = the top-level method section with the track's own keys over it (rm_core/config.py)
from rm_core.config import resolve_method

resolve_method(config)


report: "workflow/report/workflow.rst"  # `snakemake --report report.html`: every table and figure


include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/sudoku.smk"
include: "workflow/rules/text.smk"
include: "workflow/rules/image.smk"


# The workflow's only onstart handler (real runs, not dry runs or cluster jobs): with a cluster
# executor, stop before submitting anything if the cluster config cannot work (common.smk).
onstart:
    cluster_preflight(workflow)


rule all:
    input:
        SUDOKU_OUTPUTS,
        TEXT_OUTPUTS,
        IMAGE_OUTPUTS,
    default_target: True


# `snakemake validation`: the text and image models on their validation splits (not part of
# `all`): the tables every choice of settings is made on; the test split feeds only Tables 1-4.
rule validation:
    input:
        rules.text_validation.output,
        rules.image_validation.output,
