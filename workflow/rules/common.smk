# Shared helpers for the rules: config sections as JSON params, result paths.
import json

RESULTS = "results"
TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"


def params_json(section: dict, *keys, **extra) -> str:
    """The keys of a config section that a rule depends on, as JSON (so editing another
    key does not rerun the rule)."""
    out = {k: section[k] for k in keys}
    out.update(extra)
    return json.dumps(out, sort_keys=True)
