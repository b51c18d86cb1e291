"""Does History Reference act? At re-masked cells, the probability of the previous wrong digit.

Runs Eq. 1 for T turns with each model's own History Reference on a boards file. At every step,
for each cell that is MASK and whose last visible digit w was wrong (it was re-masked from w),
the model's reveal distribution (softmax over the digits, MASK excluded: what the argmax of Eq. 1
reads) is computed twice on the SAME state: with the history input (Eq. 2, as trained) and with
the history dropped (the current embedding alone). Reported: mean p(w) and the share of such
cells whose argmax is w (a replay if revealed now), for both inputs.

    python bench/hr_probe.py --boards val.parquet --box 2 3 --T 6 \
        --model rm_hr_decay_her=DIR:'{"kind": "her", "gamma": 0.9}' --model rm_no_hr=DIR:'{"kind": "none"}'
"""

from __future__ import annotations

import argparse
import json

import pandas as pd
import torch

from rm_core.backbones.small_transformer import SmallTransformer
from rm_core.history import HistoryBuffer, HistoryConfig, model_input
from rm_core.io import read_parquet
from rm_core.rule import decision_rule
from rm_core.tasks.sudoku import SudokuSpec, frame_to_boards, to_tokens


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--boards", required=True)
    ap.add_argument("--box", nargs=2, type=int, required=True)
    ap.add_argument("--T", type=int, default=6)
    ap.add_argument("--model", action="append", required=True, help="NAME=DIR:HISTORY_JSON")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = SudokuSpec(*args.box)
    solution, initial, _ = frame_to_boards(read_parquet(args.boards, ["solution", "initial", "board_id"]))
    sol, init = torch.as_tensor(to_tokens(solution, spec)), torch.as_tensor(to_tokens(initial, spec))
    rows = []
    for item in args.model:
        name, rest = item.split("=", 1)
        mdir, hjson = rest.split(":", 1)
        model = SmallTransformer.from_pretrained(mdir).eval()
        rows.append({"model": name, "history": hjson, **probe(model, HistoryConfig.from_dict(json.loads(hjson)),
                                                              init, sol, args.T)})
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    print(df.to_string(index=False))
    if args.out:
        df.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
