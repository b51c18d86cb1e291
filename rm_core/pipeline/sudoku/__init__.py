"""The Sudoku track (paper Table 2): ``data`` (boards) -> ``train`` (one RM variant per History
Reference setting and seed) -> ``evaluate`` (Eq. 1 turns, board metrics) -> ``report`` (Table 2,
figures). Each stage function reads its inputs, writes its outputs atomically and takes the
track's config section (``config.yaml: sudoku``) as a plain dict.
"""
