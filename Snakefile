# Reflective Masking, reproduced. `snakemake all` runs the default (mini) scale;
# `snakemake --configfile config/paper.yaml all` the paper scale. See README.md.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/sudoku.smk"


rule all:
    input:
        SUDOKU_OUTPUTS,
    default_target: True
