"""bench/image_failures.py on edits worked out by hand."""

import pandas as pd

from bench.image_failures import failures


def test_failures_by_hand():
    tokens = pd.DataFrame({"id": ["a", "b", "c"], "kind": ["add", "remove", "move"],
                           "source_codes": [[1, 1, 1, 1], [5, 1, 6, 1], [7, 1, 1, 1]],
                           "target_codes": [[1, 9, 1, 1], [5, 1, 1, 1], [1, 1, 1, 7]]})
    outputs = pd.DataFrame({"id": ["c", "a", "b"],
                            "codes": [[1, 1, 1, 1],    # move: removed, not placed
                                      [1, 1, 1, 1],    # add: left unchanged
                                      [1, 1, 1, 1]]})  # remove: the wrong object removed as well
    d = failures(tokens, outputs).set_index("kind")
    assert d.loc["add"].tolist() == [False, True, 0.0, 0.0, 0]
    assert d.loc["remove"].tolist() == [False, False, 1.0, 1.0, 1]
    assert d.loc["move"].tolist() == [False, False, 0.5, 0.5, 0]
    exact = failures(tokens, pd.DataFrame({"id": ["a"], "codes": [[1, 9, 1, 1]]}))
    assert exact.iloc[0].tolist() == ["add", True, False, 1.0, 1.0, 0]
