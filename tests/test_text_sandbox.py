"""The code sandbox: pass/fail/timeout/error, limits, and refused side effects."""

import shutil
import tempfile
import time
from pathlib import Path

from rm_core.metrics.code_sandbox import build_program, make_probes, run_tests


def test_pass_and_fail():
    code = "def f(x):\n    return x + 1"
    assert run_tests(code, ["assert f(1) == 2"]).status == "passed"
    res = run_tests(code, ["assert f(1) == 2", "assert f(2) == 4"])
    assert (res.passed, res.status) == (False, "failed")
    assert "AssertionError" in res.stderr_tail


def test_order_is_code_setup_tests():
    assert build_program("A", ["t1", "t2"], "S") == "A\nS\nt1\nt2\n"
    code = "class Node:\n    def __init__(self, v):\n        self.v = v"
    assert run_tests(code, ["assert n.v == 3"], setup="n = Node(3)").passed


def test_values_are_judged_in_the_parent():
    # only the non-literal side enters the sandbox; the parent compares with the literal it kept
    probes = make_probes(["assert f(1) == [1, (2, 3)]", "assert 4 == g()", "assert h(2)", "assert a(1) == b(1)"])
    assert [(p.expr, p.expected, p.compare) for p in probes] == [
        ("f(1)", [1, (2, 3)], True), ("g()", 4, True), ("h(2)", None, False), ("(a(1)) == (b(1))", None, False)]
    code = "import collections\ndef f(x):\n    return collections.Counter('aab')\ndef g():\n    return {1: 0.5, 'k': {2, 3}}"
    assert run_tests(code, ["assert f(0) == {'a': 2, 'b': 1}", "assert g() == {1: 0.5, 'k': {3, 2}}"]).passed
    res = run_tests(code, ["assert g() == {1: 0.5, 'k': {3}}"])
    assert res.status == "failed" and "got" in res.stderr_tail
    nan = "def f():\n    return float('nan'), 1j, frozenset([1])"
    assert not run_tests(nan, ["assert f() == (float('nan'), 1j, frozenset([1]))"]).passed  # nan != nan, as in Python
    assert run_tests(nan, ["assert f()[1:] == (1j, frozenset([1]))"]).passed


def test_infinite_loop_times_out():
    t = time.time()
    res = run_tests("while True:\n    pass", [], timeout=1.5)
    assert res.status == "timeout" and not res.passed
    assert time.time() - t < 10


def test_memory_hog_is_stopped():
    res = run_tests("x = bytearray(4 * 1024 ** 3)", ["assert len(x) > 0"], memory_mb=256)
    assert res.status == "error" and "MemoryError" in res.stderr_tail


def test_socket_connection_refused():
    code = "import socket\ns = socket.socket()\ns.connect(('1.1.1.1', 80))"
    res = run_tests(code, [], timeout=5)
    assert not res.passed and res.status == "error"
    res = run_tests("import socket\nsocket.create_connection(('example.com', 80), timeout=2)", [], timeout=5)
    assert not res.passed


def test_side_effects_refused(tmp_path):
    assert not run_tests("import os\nos.system('true')", []).passed  # audit hook
    assert not run_tests("import subprocess\nsubprocess.run(['true'])", []).passed
    outside = Path(tempfile.mkdtemp(prefix="rm_outside_", dir="/var/tmp"))
    try:
        assert not run_tests(f"open({str(outside / 'x')!r}, 'w')", []).passed  # read-only file system
        assert not (outside / "x").exists()
    finally:
        shutil.rmtree(outside)
    # /tmp inside is the sandbox's own tmpfs: writable, private, gone afterwards
    assert run_tests("open('/tmp/local.txt', 'w').write('ok')", ["assert open('local.txt').read() == 'ok'"]).passed
    assert not Path("/tmp/local.txt").exists()


def test_early_exit_does_not_pass():
    assert run_tests("import sys\nsys.exit(0)", ["assert False"]).status == "error"
    assert run_tests("import os\nos._exit(0)", ["assert 1 == 2"]).status == "error"
    assert run_tests("def f(:\n  pass", []).status == "error"
