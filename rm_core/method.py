"""The method's settings: one typed structure, the same key names in every track.

:class:`RMConfig` holds RM training (Appendix C trajectories, Eq. 2 History Reference, the
Eq. 4 loss) and :class:`RMEval` RM inference (Eq. 1 turns). The config's top-level ``rm:``
section holds the method's values; a track's own ``rm:`` section overrides only what differs
for it (:func:`track_rm`), so each value has one home. A key that is not a field is an error
here as in the schema, and so is a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .history import HistoryConfig
from .trajectory import EditSetSize

INITS = ("given", "draft", "mask", "source")


def merge(base: dict, override: dict) -> dict:
    """``override`` over ``base``, recursively for nested sections (neither is modified)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def track_rm(config: dict, track: str) -> dict:
    """The ``rm`` settings of ``track``: the top-level ``rm`` section with the track's own
    ``rm`` keys over it."""
    return merge(config["rm"], config[track].get("rm") or {})


def _check_keys(cls, d: dict, where: str) -> None:
    names = {f.name for f in fields(cls)}
    unknown, missing = sorted(set(d) - names), sorted(names - set(d))
    if unknown:
        raise ValueError(f"unknown key(s) {[f'{where}.{k}' for k in unknown]}; {where} takes {sorted(names)}")
    if missing:
        raise ValueError(f"missing key(s) {[f'{where}.{k}' for k in missing]}")


@dataclass(frozen=True)
class RMEval:
    """RM at evaluation: ``turns`` of Eq. 1 from the first state ``init`` (Sudoku: the ``given``
    corrupted board; text: a low-confidence ``draft`` of ``draft_steps`` steps, or all ``mask``;
    image: the ``source`` image's tokens). ``scaling_turns``: turns run once for the
    accuracy-vs-turns figure. ``early_stop`` (ours): stop at a fixed point; ``final_reveal``
    (ours): MASKs left after the last turn get one more reveal step."""

    turns: int
    scaling_turns: int
    init: str
    draft_steps: int
    early_stop: bool
    final_reveal: bool

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"rm.eval.init must be one of {INITS}, got {self.init!r}")
        if self.turns < 1 or self.scaling_turns < 1 or self.draft_steps < 0:
            raise ValueError(f"rm.eval needs turns >= 1, scaling_turns >= 1, draft_steps >= 0, got {self}")

    @classmethod
    def from_dict(cls, d: dict, where: str = "rm.eval") -> "RMEval":
        _check_keys(cls, d, where)
        return cls(**d)

    def check_track(self, where: str, inits: tuple, draft: bool = False, final_reveal: bool = False,
                    early_stop: bool = False) -> "RMEval":
        """Raise when a setting asks for something the track's sampler does not do (a key set
        there must never be ignored silently); return self."""
        if self.init not in inits:
            raise ValueError(f"{where}.init must be one of {inits} for this track, got {self.init!r}")
        for key, ok in (("draft_steps", draft or self.draft_steps == 0), ("final_reveal", final_reveal or not self.final_reveal),
                        ("early_stop", early_stop or not self.early_stop)):
            if not ok:
                raise ValueError(f"{where}.{key} = {getattr(self, key)!r} is not supported by this track")
        return self


@dataclass(frozen=True)
class RMConfig:
    """RM training: trajectories of length ``T`` (Appendix C) over an edit set of size
    ``edit_set``, each edit position wrong with probability ``p_wrong`` (else MASK; ours, with
    probability ``p_wrong_reveal`` first: a MASK revealed wrong then re-masked; with probability
    ``p_wrong_again`` a wrong token re-masked then revealed wrong again), History
    Reference ``history`` (Eq. 2), the Eq. 4 loss with probabilities clipped at ``eps`` and
    weight ``other_weight`` on editable positions outside the edit set; the auxiliary losses
    (ours) ``unlikelihood_weight`` (against re-masking positions that never change) and
    ``ordering_weight`` (a pairwise re-mask ranking); and ``eval`` (None for a training stage,
    which is given the section without it, so that editing an evaluation setting does not
    retrain)."""

    T: int
    history: HistoryConfig
    edit_set: EditSetSize
    p_wrong: float
    p_wrong_reveal: float
    p_wrong_again: float
    eps: float
    other_weight: float
    unlikelihood_weight: float
    ordering_weight: float
    eval: RMEval | None

    def __post_init__(self):
        if self.T < 1:
            raise ValueError(f"rm.T must be >= 1, got {self.T}")
        if not 0.0 <= self.p_wrong <= 1.0:
            raise ValueError(f"rm.p_wrong must be in [0, 1], got {self.p_wrong}")
        if not 0.0 <= self.p_wrong_reveal <= 1.0:
            raise ValueError(f"rm.p_wrong_reveal must be in [0, 1], got {self.p_wrong_reveal}")
        if not 0.0 <= self.p_wrong_again <= 1.0:
            raise ValueError(f"rm.p_wrong_again must be in [0, 1], got {self.p_wrong_again}")

    @classmethod
    def from_dict(cls, d: dict, where: str = "rm") -> "RMConfig":
        """``d`` with or without ``eval`` (see the class docstring); any other key missing is an error."""
        _check_keys(cls, {"eval": None, **d}, where)
        ev = d.get("eval")
        return cls(**{**d, "history": HistoryConfig(**d["history"]), "edit_set": EditSetSize(**d["edit_set"]),
                      "eval": None if ev is None else RMEval.from_dict(ev, f"{where}.eval")})


def training_settings(rm: dict) -> dict:
    """A track's ``rm`` settings without ``eval``: what its training stages read."""
    return {k: v for k, v in rm.items() if k != "eval"}
