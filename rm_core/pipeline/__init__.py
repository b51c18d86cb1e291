"""Stage functions: what each Snakemake rule runs (through ``rm_core.cli``), one module per track."""
