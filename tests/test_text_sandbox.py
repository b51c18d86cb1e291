"""The code sandbox: pass/fail/timeout/error, limits, and refused side effects."""

import time

from rm_core.metrics.code_sandbox import build_program, run_tests


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


def test_side_effects_refused():
    assert not run_tests("import os\nos.system('true')", []).passed
    assert not run_tests("import subprocess\nsubprocess.run(['true'])", []).passed
    assert not run_tests("open('/tmp/rm_sandbox_escape_test', 'w')", []).passed
    assert run_tests("open('local.txt', 'w').write('ok')", ["assert open('local.txt').read() == 'ok'"]).passed


def test_early_exit_does_not_pass():
    assert run_tests("import sys\nsys.exit(0)", ["assert False"]).status == "error"
    assert run_tests("def f(:\n  pass", []).status == "error"
