"""rm_core.method: the typed method config, the top-level `rm` section merged under each track's."""

import pytest
import yaml

from rm_core.config import ROOT, load_config
from rm_core.history import HistoryConfig
from rm_core.method import RMConfig, RMEval, merge, track_rm
from rm_core.trajectory import EditSetSize

TOP = {"T": 6, "history": {"kind": "her", "gamma": 0.9, "base": 10000.0, "mode": "relative"},
       "edit_set": {"kind": "fraction", "low": 0.0, "high": 1.0}, "p_wrong": 0.5, "p_wrong_reveal": 0.0, "p_wrong_again": 0.0, "eps": 1e-8, "other_weight": 1.0,
       "unlikelihood_weight": 0.0, "ordering_weight": 0.0,
       "eval": {"turns": 6, "scaling_turns": 12, "draft_steps": 0, "early_stop": False, "final_reveal": False}}


def test_merge_is_recursive_and_leaves_its_inputs_alone():
    base = {"a": 1, "h": {"kind": "her", "gamma": 0.9}, "e": {"x": 1}}
    over = {"h": {"gamma": 0.5}, "e": 3, "n": {"y": 2}}
    assert merge(base, over) == {"a": 1, "h": {"kind": "her", "gamma": 0.5}, "e": 3, "n": {"y": 2}}
    assert base == {"a": 1, "h": {"kind": "her", "gamma": 0.9}, "e": {"x": 1}} and over["h"] == {"gamma": 0.5}


def test_track_rm_overrides_only_what_the_track_sets():
    config = {"rm": TOP, "image": {"rm": {"p_wrong": 1.0, "eval": {"init": "source", "final_reveal": True}}},
              "text": {"rm": {"eval": {"init": "draft"}}}}
    image = RMConfig.from_dict(track_rm(config, "image"), "image.rm")
    assert image.p_wrong == 1.0 and image.eval.final_reveal and image.eval.init == "source"
    assert image.history == HistoryConfig(kind="her", gamma=0.9, base=10000.0, mode="relative")
    assert image.edit_set == EditSetSize("fraction", 0.0, 1.0) and image.T == 6 and image.eval.turns == 6
    text = RMConfig.from_dict(track_rm(config, "text"), "text.rm")
    assert text.p_wrong == 0.5 and not text.eval.final_reveal and text.eval.init == "draft"


def test_unknown_and_missing_keys_are_errors_naming_them():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['image\.rm\.p_wrnog'\]"):
        RMConfig.from_dict({**TOP, "p_wrnog": 0.3, "eval": {**TOP["eval"], "init": "given"}}, "image.rm")
    with pytest.raises(ValueError, match=r"missing key\(s\) \['text\.rm\.eval\.init'\]"):
        RMConfig.from_dict(TOP, "text.rm")
    with pytest.raises(ValueError, match=r"rm\.eval\.init must be one of"):
        RMEval.from_dict({**TOP["eval"], "init": "noise"})
    with pytest.raises(ValueError, match=r"rm\.p_wrong must be in \[0, 1\]"):
        RMConfig.from_dict({**TOP, "p_wrong": 1.5, "eval": {**TOP["eval"], "init": "given"}})
    with pytest.raises(ValueError, match=r"history\.gamma"):
        RMConfig.from_dict({**TOP, "history": {**TOP["history"], "gamma": 0.0}, "eval": {**TOP["eval"], "init": "given"}})


def test_a_track_refuses_an_eval_setting_its_sampler_does_not_do():
    ev = RMEval.from_dict({**TOP["eval"], "init": "given"})
    assert ev.check_track("sudoku.rm.eval", ("given",)) is ev
    with pytest.raises(ValueError, match=r"sudoku\.rm\.eval\.early_stop = True is not supported"):
        RMEval.from_dict({**TOP["eval"], "init": "given", "early_stop": True}).check_track("sudoku.rm.eval", ("given",))
    with pytest.raises(ValueError, match=r"image\.rm\.eval\.init must be one of \('source',\)"):
        ev.check_track("image.rm.eval", ("source",), final_reveal=True)
    with pytest.raises(ValueError, match=r"draft_steps = 4"):
        RMEval.from_dict({**TOP["eval"], "init": "source", "draft_steps": 4}).check_track("image.rm.eval", ("source",))
    text = RMEval.from_dict({**TOP["eval"], "init": "draft", "draft_steps": 4, "early_stop": True})
    assert text.check_track("text.rm.eval", ("draft", "mask"), draft=True, early_stop=True) is text


def test_training_stages_get_the_settings_without_eval():
    from rm_core.method import training_settings

    d = training_settings(TOP)
    assert "eval" not in d and RMConfig.from_dict(d).eval is None and RMConfig.from_dict(d).T == 6


@pytest.mark.parametrize("overlay", sorted(p.name for p in (ROOT / "config").glob("*.yaml") if p.name != "paper.yaml"))
def test_every_config_overlay_validates_and_sets_its_keys(overlay):
    """Each overlay of config/ merges over config.yaml and over config/paper.yaml into a config the
    schema accepts, with every value it sets in the result (a misspelt key fails the schema)."""
    over = yaml.safe_load((ROOT / "config" / overlay).read_text())

    def leaves(d, path=()):
        for k, v in d.items():
            yield from leaves(v, path + (k,)) if isinstance(v, dict) else [(path + (k,), v)]

    for cfg in (load_config(ROOT / "config" / overlay), load_config(ROOT / "config" / "paper.yaml", ROOT / "config" / overlay)):
        for path, value in leaves(over):
            got = cfg
            for k in path:
                got = got[k]
            assert got == value, (overlay, path)
