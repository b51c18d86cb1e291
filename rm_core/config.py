"""The run configuration: config.yaml (+ overlays), validated, with the method resolved per track.

The Snakefile validates the config against workflow/schemas/config.schema.yaml and calls
:func:`resolve_method`; :func:`load_config` does the same for code outside Snakemake (tests,
benchmarks): the real config plus overrides, never a partial dict.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .method import RMConfig, merge, track_rm

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
TRACKS = ("sudoku", "text", "image")


def resolve_method(config: dict) -> dict:
    """In place, and returned: each track's ``rm`` becomes the top-level ``rm`` section with the
    track's own keys over it, checked as an :class:`RMConfig` (an error names the key)."""
    for track in TRACKS:
        if track in config:
            merged = track_rm(config, track)
            RMConfig.from_dict(merged, f"{track}.rm")
            config[track]["rm"] = merged
    return config


def load_config(*overlays: str | Path | dict, base: str | Path = ROOT / "config.yaml") -> dict:
    """``base`` with each overlay (a YAML file or a dict) merged over it in order, as Snakemake's
    ``--configfile`` does; validated against the schema, the method resolved."""
    import jsonschema

    config = yaml.safe_load(Path(base).read_text())
    for o in overlays:
        config = merge(config, o if isinstance(o, dict) else yaml.safe_load(Path(o).read_text()) or {})
    jsonschema.validate(config, yaml.safe_load(SCHEMA.read_text()))
    return resolve_method(config)
