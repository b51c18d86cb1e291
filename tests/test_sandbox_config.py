"""``text.eval.unsafe_code_exec`` (ours): in the schema, false (safe) in both configs, and both validate."""

from pathlib import Path

import pytest

from rm_core.config import load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["config.yaml", "config/paper.yaml"])
def test_unsafe_code_exec_defaults_to_safe(name):
    from snakemake.utils import validate

    cfg = load_config(ROOT / name)  # the real config (paper: over config.yaml, as Snakemake loads it)
    assert cfg["text"]["eval"]["unsafe_code_exec"] is False
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    bad = dict(cfg, text=dict(cfg["text"], eval=dict(cfg["text"]["eval"], unsafe_code_exec="yes")))
    with pytest.raises(Exception, match="unsafe_code_exec|yes"):
        validate(bad, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
