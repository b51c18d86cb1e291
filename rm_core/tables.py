"""Tables 1-4: our numbers beside the paper's, as Markdown, LaTeX and CSV.

The paper's numbers are constants here (from the paper's tables; see
``shared/paper/EQUATIONS.md``). They are always printed in their own columns, never in
place of ours, and every table states the scale that produced our numbers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import write_text

PAPER_TABLE1 = pd.DataFrame(
    {
        "Prec.": [65.81, 71.84, 99.73],
        "Coverage": [41.68, 48.42, 73.02],
        "MAE-RGB": [12.497, 11.035, 3.613],
        "PSNR (dB)": [23.092, 23.900, 34.759],
        "SSIM": [0.6256, 0.6570, 0.9744],
        "Instr. score": [71.95, 81.61, 85.17],
    },
    index=["base", "sft", "rm"],
)

PAPER_TABLE2 = pd.DataFrame(
    {
        "Exact Acc (%)": [82.4, 91.4, 89.4, 93.4],
        "Valid Rate (%)": [86.6, 91.8, 89.6, 93.6],
        "Replay Mistake (%)": [0.57, 0.07, 0.07, 0.03],
        "Conflict Cells / board": [0.578, 0.300, 0.362, 0.236],
    },
    index=["rm_no_hr", "rm_hr", "rm_hr_decay", "rm_hr_decay_her"],
)

PAPER_TABLE3 = pd.DataFrame(
    {"base": [19.4, 28.0, 73.7], "sft": [22.4, 30.6, 81.3], "rm": [24.8, 39.4, 86.1]},
    index=["MATH500", "MBPP", "ARC-Challenge"],
)

PAPER_TABLE4 = pd.DataFrame(
    {
        "Algebra": [28.90, 29.49],
        "Counting & Probability": [17.72, 18.35],
        "Geometry": [20.67, 20.67],
        "Intermediate Algebra": [13.07, 14.40],
        "Number Theory": [17.41, 21.67],
        "Prealgebra": [36.28, 38.00],
        "Precalculus": [14.10, 16.67],
        "Aggregate": [22.62, 24.10],
    },
    index=["sft", "rm"],
)

VARIANT_NAMES = {
    "rm_no_hr": "RM w/o HR",
    "rm_hr": "RM + HR",
    "rm_hr_decay": "RM + HR + decay",
    "rm_hr_decay_her": "RM + HR + decay + HER",
}


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Interleave columns as "<metric> (ours)", "<metric> (paper)"; rows are ours' rows.

    A row or metric the paper does not have gets an empty paper cell.
    """
    out = {}
    for col in ours.columns:
        out[f"{col} (ours)"] = ours[col]
        out[f"{col} (paper)"] = paper[col].reindex(ours.index) if col in paper.columns else pd.Series(index=ours.index, dtype=float)
    return pd.DataFrame(out, index=ours.index)


def _fmt(v, digits: int) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def to_markdown(df: pd.DataFrame, digits: int = 2, index_name: str = "") -> str:
    cols = [index_name] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [_fmt(v, digits) for v in row]) + " |")
    return "\n".join(lines)


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        s = s.replace(a, b)
    return s


def to_latex(df: pd.DataFrame, caption: str, label: str, digits: int = 2, index_name: str = "") -> str:
    cols = [index_name] + [str(c) for c in df.columns]
    body = [" & ".join(_tex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for idx, row in df.iterrows():
        body.append(" & ".join([_tex_escape(str(idx))] + [_fmt(v, digits).replace("–", "--") for v in row]) + r" \\")
    return "\n".join([
        r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}", rf"\label{{{label}}}",
        r"\begin{tabular}{l" + "r" * len(df.columns) + "}", r"\toprule", *body, r"\bottomrule", r"\end{tabular}",
        r"\end{table}", "",
    ])


def write_table(df: pd.DataFrame, stem: str | Path, title: str, scale: str, notes: str = "", digits: int = 2,
                index_name: str = "", paper: bool = True) -> None:
    """Write ``stem``.md / .tex / .csv; the title and a scale line head the Markdown. ``paper``: the
    table has (paper) columns beside ours."""
    stem = Path(stem)
    caption = f"{title} Our numbers: {scale} scale." + (" Paper numbers: the paper's table, shown beside ours."
                                                        if paper else "")
    beside = (" Columns marked (paper) are the paper's reported numbers, shown for comparison; they are not "
              "reproduced values." if paper else "")
    md = "\n".join([f"# {title}", "", f"Scale of our numbers: **{scale}**.{beside}", "",
                    to_markdown(df, digits, index_name), "", notes, ""])
    write_text(md, stem.with_suffix(".md"))
    write_text(to_latex(df, caption, f"tab:{stem.name}", digits, index_name), stem.with_suffix(".tex"))
    csv = df.copy()
    csv.insert(0, "scale", scale)
    write_text(csv.to_csv(index_label=index_name or "row"), stem.with_suffix(".csv"))
