"""mutmut hooks (README "Mutation testing").

A seeded random sample of the mutants: with ``MUTMUT_SAMPLE=f`` (0 < f <= 1) each mutant is kept
with probability f, decided by a hash of (``MUTMUT_SEED``, file, line number, mutation index, line
text), so the same seed picks the same mutants on every machine; the others are reported as
skipped. Unset: every mutant is tested.
"""

import hashlib
import os


def _keep(context) -> bool:
    frac = float(os.environ.get("MUTMUT_SAMPLE", "1"))
    if frac >= 1:
        return True
    seed = os.environ.get("MUTMUT_SEED", "0")
    mid = context.mutation_id
    key = f"{seed}|{context.filename}|{mid.line_number}|{mid.index}|{mid.line}".encode()
    u = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64
    return u < frac


def pre_mutation(context):
    if not _keep(context):
        context.skip = True
