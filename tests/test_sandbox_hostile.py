"""Hostile generated programs are contained by the OS sandbox (issue 11): nothing outside changes,
nothing is left running, no forged pass. Each program runs with the audit hook OFF (the OS layer
alone) unless stated; children carry a unique marker in their command line so that a /proc scan
finds any that survive. Loopback only; every run is bounded by its timeout."""

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from rm_core.metrics import code_sandbox as cs

# visible (read-only) inside the sandbox: the Python installation; other host folders are not mounted at all
VISIBLE = Path(sys.prefix)

pytestmark = pytest.mark.skipif(cs.sandbox_problem() is not None, reason=f"no OS sandbox: {cs.sandbox_problem()}")

# _posixsubprocess.fork_exec raises no audit event; the 3.11 argument list (what subprocess passes)
SPAWN = """
import os, _posixsubprocess
def spawn(argv):
    r, w = os.pipe()
    pid = _posixsubprocess.fork_exec([os.fsencode(a) for a in argv], [os.fsencode(argv[0])], True, (w,), None,
                                     None, -1, -1, -1, -1, -1, -1, r, w, True, True, -1, None, None, None, -1,
                                     None, False)
    os.close(w)
    os.close(r)
    return pid
"""


@pytest.fixture
def outside():
    """A directory outside the sandbox (not under /tmp, which the sandbox replaces), with a victim file."""
    d = Path(tempfile.mkdtemp(prefix="rm_outside_", dir="/var/tmp"))
    (d / "victim.txt").write_text("keep")
    os.chmod(d / "victim.txt", 0o644)
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def snapshot(d: Path) -> dict:
    return {p.name: (stat.S_IMODE(p.lstat().st_mode), p.read_bytes() if p.is_file() else None) for p in d.iterdir()}


def snapshots(outside: Path) -> tuple:
    return snapshot(outside), snapshot(VISIBLE)


def survivors(marker: str, wait: float = 3.0) -> list[int]:
    """Pids whose command line holds ``marker`` (after up to ``wait`` s for teardown)."""
    deadline = time.monotonic() + wait
    while True:
        found = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit() and int(p.name) != os.getpid():
                try:
                    if marker.encode() in (p / "cmdline").read_bytes():
                        found.append(int(p.name))
                except OSError:
                    pass
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def hostile(code, tests, outside, marker, **kw):
    before = snapshots(outside)
    kw.setdefault("audit_hook", False)
    kw.setdefault("timeout", 8)
    res = cs.run_tests(code, tests, **kw)
    assert snapshots(outside) == before, "the program changed a file outside the sandbox"
    assert survivors(marker) == [], "a process of the program outlived the verdict"
    return res


def child(marker, outside, seconds=30):
    """argv of a Python child that keeps trying to write outside, with ``marker`` in its command line."""
    body = (f"import time\nfor _ in range({seconds * 10}):\n    try: open({str(outside / 'escaped')!r}, 'w')\n"
            "    except OSError: pass\n    time.sleep(0.1)")
    return [sys.executable, "-c", body, marker]


def test_fork_exec_children_are_contained(outside):
    m = f"rmmark{uuid.uuid4().hex}"
    code = SPAWN + f"pids = [spawn({child(m, outside)!r}) for _ in range(3)]\n"
    for hook in (False, True):
        res = hostile(code, ["assert len(pids) == 3"], outside, m, audit_hook=hook)
        assert res.passed, res  # the children started, yet nothing escaped and none survived


def test_bounded_fork_storm(outside):
    m = f"rmmark{uuid.uuid4().hex}"
    code = ("import os\nn = 0\nfor _ in range(60):\n    try:\n        pid = os.fork()\n    except OSError:\n"
            "        break\n    if pid == 0:\n"
            f"        os.execv('/bin/sh', ['sh', '-c', 'sleep 30; true', {m!r}])\n    n += 1\n")
    res = hostile(code, ["assert n"], outside, m, max_procs=8)
    assert res.passed
    # at most max_procs processes: bwrap's init, the runner and its helper count, so fewer than 8 children
    res = hostile(code, ["assert n < 8"], outside, m, max_procs=8)
    assert res.passed, res


def test_host_files_are_hidden(outside):
    """Only /usr, /etc and the Python installation are mounted: the repository, home folders and the
    benchmark files (which hold the expected answers) do not exist inside."""
    m = f"rmmark{uuid.uuid4().hex}"
    home = [p for p in Path.home().iterdir() if p.is_file()][:3]
    data = Path(os.environ.get("RM_SHARED_DATA", "/work/shared/data")) / "mbpp" / "mbpp.jsonl"
    paths = [p for p in [outside / "victim.txt", Path(__file__).resolve(), data, *home] if p.exists()]
    assert len(paths) >= 2
    code = f"import os\ndef seen():\n    return [os.path.exists(p) for p in {[str(p) for p in paths]!r}]\n"
    res = hostile(code, [f"assert seen() == {[False] * len(paths)!r}"], outside, m)
    assert res.passed, res


def test_dir_fd_and_relative_writes_refused(outside):
    m = f"rmmark{uuid.uuid4().hex}"
    code = f"""import os
def attempt(op):
    try:
        op()
        return 'ok'
    except OSError:
        return 'refused'
def ops(d, destructive):
    fd = lambda: os.open(d, os.O_RDONLY)
    out = [attempt(lambda: os.open('made_{m}', os.O_CREAT | os.O_WRONLY, dir_fd=fd())),
           attempt(lambda: os.mkdir('dir_{m}', dir_fd=fd())),
           attempt(lambda: (os.chdir(d), open('rel_{m}', 'w')))]
    if destructive:
        out += [attempt(lambda: os.unlink('victim.txt', dir_fd=fd())),
                attempt(lambda: os.rename('victim.txt', 'moved', src_dir_fd=fd(), dst_dir_fd=fd())),
                attempt(lambda: open(os.path.join(d, 'victim.txt'), 'a').write('x'))]
    return out
"""
    tests = [f"assert ops({str(outside)!r}, True) == ['refused'] * 6", f"assert ops({str(VISIBLE)!r}, False) == ['refused'] * 3"]
    res = hostile(code, tests, outside, m)
    assert res.passed, res


def test_sqlite_fifo_fchmod_refused(outside):
    m = f"rmmark{uuid.uuid4().hex}"
    code = f"""import os, sqlite3
def attempt(op):
    try:
        op()
        return 'ok'
    except (OSError, sqlite3.Error):
        return 'refused'
def sql(path):
    c = sqlite3.connect(path)
    c.execute('create table t (x)')
    c.commit()
def ops(d, victim):
    return [attempt(lambda: sql(os.path.join(d, 'db_{m}.sqlite'))),
            attempt(lambda: os.mkfifo(os.path.join(d, 'fifo_{m}'))),
            attempt(lambda: os.fchmod(os.open(os.path.join(d, victim), os.O_RDONLY), 0o600)),
            attempt(lambda: os.chmod(os.path.join(d, victim), 0o600))]
"""
    tests = [f"assert ops({str(outside)!r}, 'victim.txt') == ['refused'] * 4",
             f"assert ops({str(VISIBLE)!r}, 'pyvenv.cfg') == ['refused'] * 4"]
    mode = stat.S_IMODE((VISIBLE / "pyvenv.cfg").stat().st_mode)
    try:
        res = hostile(code, tests, outside, m)
    finally:
        os.chmod(VISIBLE / "pyvenv.cfg", mode)  # only matters if the sandbox failed
    assert res.passed, res


def test_pidfd_kill_of_the_grader_fails(outside):
    m = f"rmmark{uuid.uuid4().hex}"
    code = f"""import os, signal
out = []
for pid in ({os.getpid()}, os.getppid()):
    try:
        fd = os.pidfd_open(pid)
        signal.pidfd_send_signal(fd, signal.SIGKILL)
        out.append('killed')
    except OSError:
        out.append('refused')
"""
    n_before = len(list(Path(tempfile.gettempdir()).glob("rm_sandbox_*")))
    res = hostile(code, ["assert out[0] == 'refused'"], outside, m)
    assert res.passed, res  # and this test process is still alive to say so
    assert len(list(Path(tempfile.gettempdir()).glob("rm_sandbox_*"))) <= n_before  # temp dir removed


def test_forged_verdicts_fail(outside):
    """The expected value never enters the sandbox: a program that searches its files, its command line,
    the runner's code and every frame for it, and then writes 'passed' messages itself, still fails."""
    m = f"rmmark{uuid.uuid4().hex}"
    secret = "918273645546372819"
    code = f"""import os, sys
def f():
    return 0
def search():
    target = {secret[:9]!r} + {secret[9:]!r}  # never whole in this program's text
    hits = []
    for p in ('/proc/self/cmdline', '/proc/self/environ'):
        hits += [p] if target in open(p, 'rb').read().decode('latin-1') else []
    for root, _, files in os.walk('/tmp'):
        for n in files:
            try:
                hits += [n] if target in open(os.path.join(root, n), 'rb').read().decode('latin-1') else []
            except OSError:
                pass
    fr = sys._getframe().f_back
    while fr is not None:
        blob = repr(fr.f_locals) + repr(fr.f_globals) + repr(fr.f_code.co_consts)
        hits += ['frame'] if target in blob else []
        fr = fr.f_back
    return hits
hits = search()
if hits:
    print('FOUND', hits, file=sys.stderr)
# forge: answer every probe with a guess, announce the end, leave before the real asserts run
g = sys._getframe(1).f_globals
for i, _ in enumerate(g['cfg']['probes']):
    g['say'](i, 'v', '1')
g['say'](-1, 'end')
g['chan'].flush()
os._exit(0)
"""
    res = hostile(code, [f"assert f() == {secret}"], outside, m, audit_hook=True)
    assert not res.passed and "FOUND" not in res.stderr_tail, res
    # the old marker-file forgery: a done-marker and nonce written by the program
    code2 = "import os\nopen('_done', 'w').write('x' * 32)\nos._exit(0)\n"
    assert not hostile(code2, ["assert False"], outside, m).passed


def test_early_exit_is_not_a_pass(outside):
    m = f"rmmark{uuid.uuid4().hex}"
    for code in ("import os\nos._exit(0)", "import sys\nsys.exit(0)", "raise SystemExit(0)"):
        res = hostile(code, ["assert 1 == 2"], outside, m)
        assert (res.passed, res.status) == (False, "error"), (code, res)


def test_always_equal_object_fails(outside):
    m = f"rmmark{uuid.uuid4().hex}"
    code = "class A:\n    def __eq__(self, o):\n        return True\ndef f():\n    return A()\n"
    assert not hostile(code, ["assert f() == 5"], outside, m).passed
    code = "class A(int):\n    def __eq__(self, o):\n        return True\ndef f():\n    return A(3)\n"
    assert not hostile(code, ["assert f() == 5"], outside, m).passed  # judged as the int 3


def test_environment_does_not_leak(outside, monkeypatch):
    m = f"rmmark{uuid.uuid4().hex}"
    monkeypatch.setenv("RM_SECRET_FOR_TEST", m)
    code = SPAWN + f"""import os
spawn(['/bin/sh', '-c', 'env > /tmp/env.txt', {m!r}])
import time
for _ in range(50):
    if os.path.exists('/tmp/env.txt') and open('/tmp/env.txt').read():
        break
    time.sleep(0.05)
leak = {m!r} in repr(dict(os.environ)) + open('/tmp/env.txt').read() + open('/proc/1/environ', 'rb').read().decode()
"""
    res = hostile(code, ["assert leak == False"], outside, m)
    assert res.passed, res


def test_loopback_listener_is_unreachable(outside):
    m = f"rmmark{uuid.uuid4().hex}"
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    port = srv.getsockname()[1]
    code = SPAWN + f"""import socket, time
spawn([{sys.executable!r}, '-c', 'import socket\\ntry: socket.create_connection(("127.0.0.1", {port}), timeout=1)\\nexcept OSError: pass', {m!r}])
def f():
    try:
        socket.create_connection(('127.0.0.1', {port}), timeout=2)
        return 'connected'
    except OSError:
        return 'blocked'
time.sleep(1)
"""
    try:
        for hook in (False, True):
            assert hostile(code, ["assert f() == 'blocked'"], outside, m, audit_hook=hook).passed
        with pytest.raises(BlockingIOError):
            srv.accept()
    finally:
        srv.close()


def test_memory_and_disk_caps(outside):
    m = f"rmmark{uuid.uuid4().hex}"
    res = hostile("x = bytearray(4 * 1024 ** 3)", ["assert len(x) > 0"], outside, m, memory_mb=256)
    assert res.status == "error" and "MemoryError" in res.stderr_tail
    code = """def fill(path):
    try:
        for i in range(10):
            with open(path + str(i), 'wb') as f:
                f.write(b'x' * (3 << 20))
        return 'unbounded'
    except OSError:
        return 'full'
"""
    assert hostile(code, ["assert fill('/tmp/f') == 'full'", "assert fill('/dev/shm/f') == 'full'"], outside, m,
                   disk_mb=4).passed


def test_timeout_with_sigterm_ignored_kills_the_tree(outside):
    m = f"rmmark{uuid.uuid4().hex}"
    code = SPAWN + f"""import signal
spawn([{sys.executable!r}, '-c', 'import signal\\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\\nwhile True: pass', {m!r}])
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    pass
"""
    t = time.monotonic()
    res = hostile(code, [], outside, m, timeout=2)
    assert res.status == "timeout" and time.monotonic() - t < 10


def test_refuses_without_a_sandbox(monkeypatch):
    monkeypatch.setattr(cs, "sandbox_problem", lambda: "bubblewrap (bwrap) is missing (test)")
    with pytest.raises(cs.SandboxUnavailable, match="text.eval.unsafe_code_exec"):
        cs.run_tests("x = 1", ["assert x == 1"])
    cs.configure(allow_unsafe=True)
    try:
        assert cs.run_tests("x = 1", ["assert x == 1"]).passed  # explicit unsafe mode runs it unisolated
    finally:
        cs.configure(allow_unsafe=False)


def test_missing_bwrap_is_a_problem(monkeypatch):
    monkeypatch.setattr(cs.shutil, "which", lambda name: None)
    cs._bwrap.cache_clear()
    try:
        assert "bwrap" in cs.sandbox_problem()
    finally:
        monkeypatch.undo()
        cs._bwrap.cache_clear()
    assert cs.sandbox_problem() is None


def test_controls_without_the_sandbox_the_same_programs_escape(outside, monkeypatch):
    """The checks above can fail: unisolated (explicit unsafe mode), a dir_fd write lands outside and a
    fork_exec child outlives the verdict. The fork-storm cap is the cgroup/RLIMIT, not the loop bound."""
    m = f"rmmark{uuid.uuid4().hex}"
    storm = ("import os\nn = 0\nfor _ in range(40):\n    try:\n        pid = os.fork()\n    except OSError:\n"
             "        break\n    if pid == 0:\n"
             f"        os.execv('/bin/sh', ['sh', '-c', 'sleep 30; true', {m!r}])\n    n += 1\n")
    assert hostile(storm, ["assert n == 40"], outside, m, max_procs=100).passed
    monkeypatch.setattr(cs, "sandbox_problem", lambda: "disabled for this test")
    cs.configure(allow_unsafe=True)
    try:
        code = f"import os\nd = os.open({str(outside)!r}, os.O_RDONLY)\nos.close(os.open('made', os.O_CREAT | os.O_WRONLY, dir_fd=d))\n"
        cs.run_tests(code, [], audit_hook=False)
        assert (outside / "made").exists()
        # the child lives 60 s (killed below): under load the verdict can come after a short-lived one ended
        code = SPAWN + f"spawn({child(m, outside, seconds=60)!r})\n"
        cs.run_tests(code, [], audit_hook=False)
        left = survivors(m, wait=0)
        assert left
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    finally:
        cs.configure(allow_unsafe=False)


def test_grader_killed_mid_run_leaves_nothing_running(tmp_path):
    """SIGKILL the grading process while the program and its children run: bwrap dies with its
    parent (--die-with-parent) and the PID namespace with it."""
    m = f"rmmark{uuid.uuid4().hex}"
    code = SPAWN + f"spawn({child(m, tmp_path, seconds=60)!r})\nwhile True:\n    pass\n"
    grader = f"from rm_core.metrics.code_sandbox import run_tests\nrun_tests({code!r}, [], timeout=60, audit_hook=False)\n"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    tmp_before = set(Path(tempfile.gettempdir()).glob("rm_sandbox_*"))
    cg_root = cs._pids_cgroup_root()
    cg_before = set(cg_root.iterdir()) if cg_root else set()
    proc = subprocess.Popen([sys.executable, "-c", grader], env=env)
    try:
        deadline = time.monotonic() + 20
        while not survivors(m, wait=0) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert survivors(m, wait=0), "the program's child never started"
    finally:
        proc.kill()
        proc.wait()
    assert survivors(m, wait=5) == []
    # what the killed grader could not clean up: its temp dir and its (now empty) cgroup
    for d in set(Path(tempfile.gettempdir()).glob("rm_sandbox_*")) - tmp_before:
        shutil.rmtree(d, ignore_errors=True)
    for cg in (set(cg_root.iterdir()) - cg_before) if cg_root else ():
        if cg.is_dir():
            assert cgroup_empties(cg, wait=30), [cmdline(int(p)) for p in (cg / "cgroup.procs").read_text().split()]
            cg.rmdir()


def cgroup_empties(cg: Path, wait: float) -> bool:
    """Whether the cgroup holds no process within ``wait`` s: the killed sandbox's bwrap and PID-1
    processes exit a moment after the program's children (seen taking > 10 s on a loaded 2-core CI)."""
    deadline = time.monotonic() + wait
    while (cg / "cgroup.procs").read_text().strip():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid} (gone)"


def test_an_interpreter_started_by_a_relative_path_still_runs_in_the_sandbox(tmp_path):
    """python started as e.g. ../.venv/bin/python from a folder the sandbox does not mount (it
    failed: bwrap 'execvp ../.venv/bin/python: No such file')."""
    root = Path(__file__).resolve().parents[1]
    rel = os.path.relpath(sys.executable, tmp_path)
    assert rel.startswith("..")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from rm_core.metrics.code_sandbox import run_tests; "
            "ok = run_tests('def f(x):\\n    return x + 1\\n', ['assert f(1) == 2']); print(ok.passed)")
    r = subprocess.run([rel, "-c", code, str(root)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["True"], r.stdout + r.stderr[-2000:]


def test_an_interpreter_installed_under_tmp_still_runs_in_the_sandbox(tmp_path):
    """A checkout (and its venv) under the host's /tmp, as a CI clone may be: the sandbox's private
    /tmp must not hide the interpreter (it did: bwrap 'execvp .../bin/python: No such file')."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    assert str(venv).startswith("/tmp/")
    root = Path(__file__).resolve().parents[1]
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from rm_core.metrics.code_sandbox import run_tests; "
            "ok = run_tests('def f(x):\\n    return x + 1\\n', ['assert f(1) == 2']); "
            "bad = run_tests('def f(x):\\n    return x\\n', ['assert f(1) == 2']); print(ok.passed, bad.passed)")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # the venv's interpreter, with this environment's packages on its path (numpy etc. are not needed)
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code, str(root)], capture_output=True, text=True,
                       timeout=120, env=env)
    assert r.stdout.split() == ["True", "False"], r.stdout + r.stderr[-2000:]
