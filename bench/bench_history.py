"""History Reference cost, as ratios measured side by side in one run.

1. Closed form (Eq. 2 over <= 3 segments, what training uses) vs materialising the
   trajectory and running the recurrence up to t (the naive way), for the same instances.
2. HR overhead as a fraction of one forward step of the backbone: the time to build the
   HR input (closed form + RMSNorm) over the time of one ``logits`` call, for the closed form
   and for the (token, lag span) table form (rm_core.history_table, what Sudoku training uses;
   equal values).

Run: ``python bench/bench_history.py [--json out.json]``. Numbers depend on the machine;
the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rm_core.backbones.small_transformer import SmallTransformer, SmallTransformerConfig
from rm_core.history import HistoryBuffer, HistoryConfig, closed_form, model_input
from rm_core.history_table import rm_model_input_table
from rm_core.trajectory import EditSetSize, UniformProposal, build_instances, materialise


def timeit(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cases", nargs="*", default=None, help="run only these cases (sudoku-9x9, text-256, long-T)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, (B, N, d, T, V) in {"sudoku-9x9": (128, 81, 128, 6, 10), "text-256": (16, 256, 256, 6, 64),
                                  "long-T": (16, 256, 256, 24, 64)}.items():
        if args.cases and name not in args.cases:
            continue
        g = torch.Generator().manual_seed(0)
        target = torch.randint(0, V - 1, (B, N), generator=g)
        editable = torch.ones(B, N, dtype=torch.bool)
        inst = build_instances(target, editable, T, V - 1, UniformProposal(range(V - 1)), g, EditSetSize("fraction", 0.1, 0.5),
                               t=torch.full((B,), T - 1))
        model = SmallTransformer(SmallTransformerConfig(vocab_size=V, n_positions=N, mask_id=V - 1, d_model=d))
        cfg = HistoryConfig(kind="her", gamma=0.9)
        with torch.no_grad():
            def closed():
                return model_input(closed_form(model.embed(inst.seg_tokens), inst.seg_starts, inst.t, cfg, T),
                                   model.embed(inst.z), editable)

            def materialised():
                traj = materialise(inst, T)
                buf = HistoryBuffer(cfg)
                for s in range(int(inst.t.max()) + 1):
                    a = buf.update(model.embed(traj[:, s]))
                return model_input(a, model.embed(inst.z), editable)

            def table():
                return rm_model_input_table(model, inst, editable, cfg, T, V)

            assert torch.allclose(closed(), materialised(), atol=1e-4)
            assert torch.equal(closed(), table())
            x = model.embed(inst.z)
            t_closed = timeit(closed, 5)
            t_mat = timeit(materialised, 5)
            t_table = timeit(table, 5)
            t_fwd = timeit(lambda: model.logits(x), 5)
        row = {"case": name, "B": B, "N": N, "d": d, "T": T, "closed_ms": 1e3 * t_closed, "materialised_ms": 1e3 * t_mat,
               "table_ms": 1e3 * t_table, "table_over_forward": t_table / t_fwd,
               "forward_ms": 1e3 * t_fwd, "materialised_over_closed": t_mat / t_closed, "hr_over_forward": t_closed / t_fwd}
        rows.append(row)
        print(f"{name:12s} closed {row['closed_ms']:8.2f} ms | materialised {row['materialised_ms']:8.2f} ms "
              f"(x{row['materialised_over_closed']:.2f}) | forward {row['forward_ms']:8.2f} ms | HR/forward "
              f"{row['hr_over_forward']:.3f} | table {row['table_ms']:8.2f} ms, HR/forward {row['table_over_forward']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
