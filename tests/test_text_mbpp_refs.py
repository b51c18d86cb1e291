"""Every MBPP reference solution passes its asserts in the sandbox (974/974, per the data README)."""

import time
from concurrent.futures import ThreadPoolExecutor

from rm_core.metrics.code_sandbox import run_tests
from rm_core.tasks.text.benchmarks import load_mbpp, mbpp_split


def test_all_mbpp_references_pass(shared_data):
    df = load_mbpp(shared_data / "mbpp" / "mbpp.jsonl")
    assert len(df) == 974
    t = time.time()
    with ThreadPoolExecutor(2) as ex:  # each call is its own subprocess; 2 run at a time
        results = list(ex.map(lambda r: run_tests(r.code, r.test_list, r.test_setup_code, timeout=10.0), df.itertuples()))
    failed = [(r.task_id, x.status, x.stderr_tail[-200:]) for r, x in zip(df.itertuples(), results) if not x.passed]
    print(f"MBPP references: {974 - len(failed)}/974 pass in {time.time() - t:.1f} s")
    assert not failed, failed[:5]
    test_ids = set(mbpp_split(df, 0.3, seed=0)["test"])
    assert sum(x.passed for r, x in zip(df.itertuples(), results) if r.task_id in test_ids) == 682
