"""Does History Reference act? At re-masked cells, the probability of the previous wrong digit.

Runs Eq. 1 for T turns with each model's own History Reference on a boards file. At every step,
for each cell that is MASK and whose last visible digit w was wrong (it was re-masked from w),
the model's reveal distribution (softmax over the digits, MASK excluded: what the argmax of Eq. 1
reads) is computed twice on the SAME state: with the history input (Eq. 2, as trained) and with
the history dropped (the current embedding alone). Reported: mean p(w) and the share of such
cells whose argmax is w (a replay if revealed now), for both inputs.

    python bench/hr_probe.py --boards val.parquet --box 2 3 --T 6 \
        --model rm_hr_decay_her=DIR:'{"kind": "her", "gamma": 0.9}' --model rm_no_hr=DIR:'{"kind": "none"}'

``--train-states CONFIG`` adds the same question asked on TRAINING states (Appendix C instances
drawn from the boards' solutions with CONFIG's sudoku.rm edit set, p_wrong and T): at every cell
that is MASK after holding a wrong digit w, p(w) and p(x*) with its history as trained, and with
the counterfactual history in which w had been MASK (the same segment boundaries: the history
a mask-rule cell has). A model that reads its history gives w less mass with the real history;
the no-HR model's p(w) there bounds what the history can gain in the loss (−log(1 − p(w)) nats).

``--reveals`` adds ``reveal_probe``: at cells that show their own reveal, the share that Eq. 1
re-masks with the real history and with the history of a digit never revised.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pandas as pd
import torch

from rm_core.backbones.small_transformer import SmallTransformer
from rm_core.config import load_config
from rm_core.history import HistoryBuffer, HistoryConfig, model_input
from rm_core.io import read_parquet
from rm_core.method import RMConfig
from rm_core.objective import rm_model_input
from rm_core.rule import decision_rule
from rm_core.tasks.sudoku import SudokuSpec, frame_to_boards, to_tokens
from rm_core.trajectory import WRONG, UniformProposal, build_instances


@torch.no_grad()
def probe(model, history: HistoryConfig, init: torch.Tensor, sol: torch.Tensor, T: int) -> dict:
    M = model.mask_id
    x, buf = init.clone(), HistoryBuffer(history)
    last_vis = init.clone()  # the last visible digit of each cell
    editable = torch.ones_like(x, dtype=torch.bool)
    p_hr, p_plain, top_hr, top_plain = [], [], [], []
    for _ in range(T):
        e = model.embed(x)
        a = buf.update(e)
        logits = model.logits(model_input(a, e, editable))
        sel = (x == M) & (last_vis != M) & (last_vis != sol)  # re-masked from a wrong digit w
        if sel.any():
            w = last_vis[sel]
            for lg, p_out, top_out in ((logits, p_hr, top_hr), (model.logits(e), p_plain, top_plain)):
                d = lg[sel][:, :M].softmax(-1)
                p_out.append(d.gather(1, w[:, None]).squeeze(1))
                top_out.append(d.argmax(-1) == w)
        x = decision_rule(logits, x, editable, M)
        last_vis = torch.where(x != M, x, last_vis)
    cat = lambda v: torch.cat(v).float() if v else torch.zeros(0)
    ph, pp, th, tp = map(cat, (p_hr, p_plain, top_hr, top_plain))
    return {"n_cell_steps": int(ph.numel()), "p_prev_wrong_hr": float(ph.mean()) if ph.numel() else float("nan"),
            "p_prev_wrong_no_hr": float(pp.mean()) if pp.numel() else float("nan"),
            "argmax_is_prev_wrong_hr": float(th.mean()) if th.numel() else float("nan"),
            "argmax_is_prev_wrong_no_hr": float(tp.mean()) if tp.numel() else float("nan")}


@torch.no_grad()
def reveal_probe(model, history: HistoryConfig, init: torch.Tensor, sol: torch.Tensor, T: int) -> dict:
    """Does the history make a model trust its own reveals? Runs Eq. 1 for T turns with the real
    history. At every turn, for each cell that shows a digit d and was MASK at an earlier turn (d
    is its own reveal), the Eq. 1 step is taken twice on the same state: with the real history,
    and with that cell's history replaced by the one of a cell that showed d at every turn (a digit
    never revised; other cells keep theirs). Reported: the share of such cells re-masked now, for
    both histories, split by whether d is right. In the paper's Appendix C every digit that follows
    a MASK is right, so a model that learned that from its history re-masks its wrong reveals less
    with the real history than with the constant one."""
    M = model.mask_id
    x, buf = init.clone(), HistoryBuffer(history)
    editable = torch.ones_like(x, dtype=torch.bool)
    was_masked = torch.zeros_like(x, dtype=torch.bool)
    counts, remasked = {}, {}
    for t in range(T):
        e = model.embed(x)
        a = buf.update(e)
        logits = model.logits(model_input(a, e, editable))
        sel = (x != M) & was_masked
        if sel.any():
            const = HistoryBuffer(history)
            for _ in range(t + 1):
                a_const = const.update(e)  # x^(t) at every turn 0..t
            cf = model.logits(model_input(torch.where(sel[..., None], a_const, a), e, editable))
            kinds = (("wrong", sel & (x != sol)), ("right", sel & (x == sol)))
            for kind, m in kinds:
                counts[kind] = counts.get(kind, 0) + int(m.sum())
            for tag, lg in (("real", logits), ("constant", cf)):
                now = decision_rule(lg, x, editable, M) == M
                for kind, m in kinds:
                    remasked[f"{kind}_remasked_{tag}"] = remasked.get(f"{kind}_remasked_{tag}", 0) + int((now & m).sum())
        was_masked |= x == M
        x = decision_rule(logits, x, editable, M)
    out = {f"revealed_{k}_cells": n for k, n in counts.items()}
    out.update({k: v / max(counts.get(k.split("_")[0], 0), 1) for k, v in remasked.items()})
    return out


@torch.no_grad()
def train_probe(model, history: HistoryConfig, sol: torch.Tensor, rm: RMConfig, spec: SudokuSpec, n: int,
                seed: int = 0, batch: int = 256) -> dict:
    """p(w) and p(x*) at re-masked cells of Appendix C training states, real vs MASK-only history."""
    g = torch.Generator().manual_seed(seed)
    M, sums, count = spec.mask_id, {}, 0
    for start in range(0, n, batch):
        target = sol[torch.randint(0, len(sol), (min(batch, n - start),), generator=g)]
        editable = torch.ones_like(target, dtype=torch.bool)
        inst = build_instances(target, editable, rm.T, M, UniformProposal(range(spec.n)), g, rm.edit_set, rm.p_wrong)
        sel = (inst.rule == WRONG) & (inst.z == M)  # t >= beta: the cell held w, is MASK now
        if not sel.any():
            continue
        w = inst.seg_tokens[..., 0][sel]
        cf = inst.seg_tokens.clone()
        cf[..., 0] = torch.where(inst.rule == WRONG, torch.full_like(target, M), cf[..., 0])
        for tag, tokens in (("real", inst.seg_tokens), ("mask_only", cf)):
            d = model.logits(rm_model_input(model, replace(inst, seg_tokens=tokens), editable, history, rm.T))[sel].softmax(-1)
            p_w = d.gather(1, w[:, None]).squeeze(1)
            p_target = d.gather(1, target[sel][:, None]).squeeze(1)
            for k, v in (("p_w", p_w), ("p_target", p_target), ("gain_bound", -torch.log1p(-p_w.clamp(max=1 - 1e-6)))):
                sums[f"{k}_{tag}"] = sums.get(f"{k}_{tag}", 0.0) + float(v.sum())
        count += int(sel.sum())
    return {"train_cells": count, **{k: v / max(count, 1) for k, v in sums.items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--boards", required=True)
    ap.add_argument("--box", nargs=2, type=int, required=True)
    ap.add_argument("--T", type=int, default=6)
    ap.add_argument("--model", action="append", required=True, help="NAME=DIR:HISTORY_JSON")
    ap.add_argument("--out", default=None)
    ap.add_argument("--train-states", default=None, metavar="CONFIG",
                    help="also probe Appendix C training states drawn with CONFIG's sudoku.rm (e.g. config/paper.yaml)")
    ap.add_argument("--n-train", type=int, default=4096, help="training instances for --train-states")
    ap.add_argument("--reveals", action="store_true",
                    help="also: the re-mask rate of a model's own reveals, real vs constant history (reveal_probe)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = SudokuSpec(*args.box)
    solution, initial, _ = frame_to_boards(read_parquet(args.boards, ["solution", "initial", "board_id"]))
    sol, init = torch.as_tensor(to_tokens(solution, spec)), torch.as_tensor(to_tokens(initial, spec))
    rm = RMConfig.from_dict(load_config(args.train_states)["sudoku"]["rm"], "sudoku.rm") if args.train_states else None
    rows = []
    for item in args.model:
        name, rest = item.split("=", 1)
        mdir, hjson = rest.split(":", 1)
        model = SmallTransformer.from_pretrained(mdir).eval()
        history = HistoryConfig.from_dict(json.loads(hjson))
        rows.append({"model": name, "history": hjson, **probe(model, history, init, sol, args.T)})
        if args.reveals:
            rows[-1].update(reveal_probe(model, history, init, sol, args.T))
        if rm is not None:
            rows[-1].update(train_probe(model, history, sol, rm, spec, args.n_train))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    print(df.to_string(index=False))
    if args.out:
        df.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
