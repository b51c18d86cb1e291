"""Atomic writes never leave a partial file; tables put the paper's numbers beside ours."""

import pandas as pd
import pytest

from rm_core.io import atomic_path, read_parquet, write_parquet
from rm_core.tables import PAPER_TABLE2, side_by_side, write_table


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_parquet_roundtrip_and_schema_metadata(tmp_path):
    import pyarrow.parquet as pq

    df = pd.DataFrame({"a": [1, 2], "b": [[1, 2], [3]]})
    write_parquet(df, tmp_path / "x.parquet", "a: int\nb: list<int>")
    assert read_parquet(tmp_path / "x.parquet")["b"].map(list).tolist() == [[1, 2], [3]]
    assert pq.read_schema(tmp_path / "x.parquet").metadata[b"rm_core.schema"] == b"a: int\nb: list<int>"
    with pytest.raises(ValueError, match="missing column"):
        read_parquet(tmp_path / "x.parquet", ["c"])
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        read_parquet(tmp_path / "nope.parquet")


def test_table_keeps_ours_and_paper_apart(tmp_path):
    ours = pd.DataFrame({"Exact Acc (%)": [50.0, 60.0]}, index=["rm_no_hr", "rm_hr"])
    t = side_by_side(ours, PAPER_TABLE2)
    assert list(t.columns) == ["Exact Acc (%) (ours)", "Exact Acc (%) (paper)"]
    assert t.loc["rm_hr", "Exact Acc (%) (ours)"] == 60.0
    assert t.loc["rm_hr", "Exact Acc (%) (paper)"] == 91.4
    write_table(t, tmp_path / "table2", "Table 2.", "mini")
    md = (tmp_path / "table2.md").read_text()
    assert "mini" in md and "91.40" in md and "60.00" in md
    csv = pd.read_csv(tmp_path / "table2.csv")
    assert (csv["scale"] == "mini").all()
    assert "\\begin{tabular}" in (tmp_path / "table2.tex").read_text()
