"""bench/hr_probe.py --train-states: the counterfactual history (w shown as MASK) is what changes."""

import torch

from bench.hr_probe import reveal_probe, train_probe
from rm_core.backbones.small_transformer import SmallTransformer, SmallTransformerConfig
from rm_core.config import load_config
from rm_core.history import HistoryConfig
from rm_core.method import RMConfig
from rm_core.tasks.sudoku import SudokuSpec

torch.set_num_threads(1)
RM = RMConfig.from_dict(load_config("config/paper.yaml")["sudoku"]["rm"], "sudoku.rm")


def _probe(kind):
    torch.manual_seed(0)
    model = SmallTransformer(SmallTransformerConfig(vocab_size=10, n_positions=81, mask_id=9, d_model=32, n_layers=1,
                                                    n_heads=2)).eval()
    sol = torch.randint(0, 9, (16, 81))
    return train_probe(model, HistoryConfig.from_dict({"kind": kind, "gamma": 0.9}), sol, RM, SudokuSpec(3, 3), n=64)


def test_without_history_the_counterfactual_changes_nothing():
    r = _probe("none")
    assert r["train_cells"] > 50
    assert r["p_w_real"] == r["p_w_mask_only"] and r["p_target_real"] == r["p_target_mask_only"]


def test_with_history_hiding_the_wrong_digit_changes_the_prediction():
    r = _probe("sum")
    assert r["train_cells"] > 50
    assert abs(r["p_w_real"] - r["p_w_mask_only"]) > 1e-4
    assert 0 < r["gain_bound_real"] and abs(r["gain_bound_real"] - r["p_w_real"]) < 0.05  # -log(1-p) ~ p for small p


def _reveals(kind):
    torch.manual_seed(0)
    model = SmallTransformer(SmallTransformerConfig(vocab_size=10, n_positions=81, mask_id=9, d_model=32, n_layers=1,
                                                    n_heads=2)).eval()
    g = torch.Generator().manual_seed(1)
    sol = torch.randint(0, 9, (32, 81), generator=g)
    init = torch.where(torch.rand(sol.shape, generator=g) < 0.5, torch.full_like(sol, 9), sol)  # half MASK: reveals at turn 1
    return reveal_probe(model, HistoryConfig.from_dict({"kind": kind, "gamma": 0.9}), init, sol, T=4)


def test_reveal_probe_without_history_the_constant_history_changes_nothing():
    r = _reveals("none")
    assert r["revealed_wrong_cells"] > 100 and r["revealed_right_cells"] > 0
    assert r["wrong_remasked_real"] == r["wrong_remasked_constant"] and r["right_remasked_real"] == r["right_remasked_constant"]


def test_reveal_probe_with_history_the_constant_history_changes_the_decision():
    r = _reveals("sum")
    assert r["revealed_wrong_cells"] > 100
    assert r["wrong_remasked_real"] != r["wrong_remasked_constant"]
