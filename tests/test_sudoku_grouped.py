"""The grouped trainer (rm_core.grouped) gives the weights of separate runs of rm_core.train."""

import pytest
import torch

from rm_core.config import load_config
from rm_core.grouped import train_grouped
from rm_core.history import HistoryConfig
from rm_core.pipeline.sudoku.train import build_model, rm_sudoku_loss, rm_sudoku_parts
from rm_core.tasks.sudoku import SudokuSpec, generate_solved_boards, to_tokens
from rm_core.train import TrainConfig, train
from rm_core.trajectory import WRONG_AGAIN, WRONG_REVEAL

torch.set_num_threads(1)

CFG = load_config({"sudoku": {
    "box": [2, 2],
    "model": {"d_model": 32, "n_layers": 2, "n_heads": 2, "mlp_ratio": 2, "pos_scale": 1.0, "embed_std": 0.02},
    "train": {"steps": 6, "batch_size": 16, "lr": 3e-3, "warmup_steps": 2, "grad_clip": 0.05, "log_every": 2,
              "checkpoint_every": 100},
    "rm": {"edit_set": {"kind": "count", "low": 1, "high": 4}},
}})["sudoku"]
RUNS = [({"kind": "none"}, 0), ({"kind": "her", "gamma": 0.9}, 1), ({"kind": "sum"}, 0)]


def _setup(spec, solutions, hist, seed):
    torch.manual_seed(seed)
    return build_model(CFG, spec), HistoryConfig.from_dict(hist), TrainConfig.from_dict({**CFG["train"], "seed": seed})


def test_grouped_equals_separate_runs(tmp_path):
    spec = SudokuSpec(2, 2)
    solutions = torch.as_tensor(to_tokens(generate_solved_boards(40, spec, seed=0), spec))
    separate, logs = [], []
    for i, (hist, seed) in enumerate(RUNS):
        model, history, tcfg = _setup(spec, solutions, hist, seed)
        logs.append(train(model, rm_sudoku_loss(CFG, history, solutions, spec), tcfg, tmp_path / f"sep{i}", progress=False))
        separate.append(model)
    models, parts, cfgs = [], [], []
    for hist, seed in RUNS:
        model, history, tcfg = _setup(spec, solutions, hist, seed)
        models.append(model)
        parts.append(rm_sudoku_parts(CFG, history, solutions, spec))
        cfgs.append(tcfg)
    init = [{n: p.clone() for n, p in m.state_dict().items()} for m in models]
    glogs = train_grouped(models, parts, cfgs, [tmp_path / f"grp{i}" for i in range(len(RUNS))])
    for i, (sep, grp) in enumerate(zip(separate, models)):
        moved = max(float((sep.state_dict()[n] - init[i][n]).abs().max()) for n in init[i])
        assert moved > 1e-3  # training changed the weights, so the comparison below means something
        for n, p in sep.state_dict().items():
            torch.testing.assert_close(grp.state_dict()[n], p, rtol=1e-4, atol=1e-5, msg=f"run {i} {n}")
        assert list(glogs[i]["step"]) == list(logs[i]["step"])
        torch.testing.assert_close(torch.tensor(glogs[i]["loss"].values), torch.tensor(logs[i]["loss"].values),
                                   rtol=1e-4, atol=1e-5)
        assert (tmp_path / f"grp{i}" / "model.safetensors").exists()


def test_grouped_rejects_different_schedules():
    spec = SudokuSpec(2, 2)
    solutions = torch.as_tensor(to_tokens(generate_solved_boards(8, spec, seed=0), spec))
    m0, h0, c0 = _setup(spec, solutions, {"kind": "none"}, 0)
    m1, h1, c1 = _setup(spec, solutions, {"kind": "none"}, 1)
    c1 = TrainConfig.from_dict({**CFG["train"], "seed": 1, "lr": 1e-2})
    with pytest.raises(ValueError, match="one train config"):
        train_grouped([m0, m1], [rm_sudoku_parts(CFG, h0, solutions, spec)] * 2, [c0, c1])


def test_stop_after_and_callback(tmp_path):
    spec = SudokuSpec(2, 2)
    solutions = torch.as_tensor(to_tokens(generate_solved_boards(16, spec, seed=0), spec))
    model, history, tcfg = _setup(spec, solutions, {"kind": "her", "gamma": 0.9}, 0)
    seen = []
    logs = train_grouped([model], [rm_sudoku_parts(CFG, history, solutions, spec)], [tcfg], stop_after=5,
                         callback=lambda step, ms: seen.append((step, float(ms[0].head.bias.abs().sum()))), callback_every=2)
    assert [s for s, _ in seen] == [2, 4] and seen[0][1] != seen[1][1]  # the models hold the weights of that step
    assert list(logs[0]["step"]) == [2, 4, 5]


@pytest.mark.parametrize("key,rule", [("p_wrong_reveal", WRONG_REVEAL), ("p_wrong_again", WRONG_AGAIN)])
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_sudoku_training_reads_the_extra_rules(p, key, rule):
    """sudoku.rm.p_wrong_reveal and p_wrong_again (ours) reach the instances Sudoku training draws."""
    spec = SudokuSpec(2, 2)
    solutions = torch.as_tensor(to_tokens(generate_solved_boards(40, spec, seed=0), spec))
    cfg = dict(CFG, rm=dict(CFG["rm"], **{key: p}))
    model, history, _ = _setup(spec, solutions, {"kind": "her", "gamma": 0.9}, 0)
    make_input, _ = rm_sudoku_parts(cfg, history, solutions, spec)
    _, (inst, _, _) = make_input(model, torch.Generator().manual_seed(0))
    assert ((inst.rule == rule) == (inst.edit_set if p == 1.0 else torch.zeros_like(inst.edit_set))).all()
