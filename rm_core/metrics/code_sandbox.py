"""Run generated Python against assert tests in an OS-level sandbox (MBPP, mini code).

Isolation (bubblewrap, ``bwrap``; Debian/Ubuntu package ``bubblewrap``): every program runs in
fresh user, PID, mount, network, IPC and UTS namespaces (``--unshare-all``) as uid 65534 inside;
the file system holds only ``/usr``, ``/etc``, the ``/bin``-``/lib`` links and the Python installation,
all read-only, plus a private tmpfs at ``/tmp`` capped at ``disk_mb`` (and a 1 MiB ``/dev/shm``);
a fresh ``/proc`` shows only the sandbox's processes;
the environment is cleared (PATH/LANG/HOME/TMPDIR only); the only network interface is the
namespace's own loopback. Limits: RLIMIT_AS = ``memory_mb`` and RLIMIT_CPU = timeout + 1 s per
process, RLIMIT_FSIZE = 8 MiB, no core files, and a process-count cap of ``max_procs``: a pids
cgroup when the caller is root (RLIMIT_NPROC does not bind uid 0), else RLIMIT_NPROC (which binds
inside the user namespace). The wall-clock timeout SIGKILLs bwrap; the namespace's init dies with
it (``--die-with-parent``) and the kernel kills every process left in the PID namespace. A Python
audit hook refusing sockets, process creation, signals and ctypes stays as a second layer.

Where no sandbox can be made (no bwrap, namespaces disabled, no process cap), ``run_program``
refuses with :class:`SandboxUnavailable`, naming the config key ``text.eval.unsafe_code_exec``;
only with that key true does it run the program without isolation (and logs a warning).

Verdict (ours): the asserts' values are judged in the parent, not in the program's process.
``assert A == B`` with a literal side: only the other side is sent into the sandbox; the child
returns its value serialised (builtin types only; subclasses by their base type, numbers by
``__index__``/``__float__``) and the parent compares it with the literal it kept. Any other
assert: the child returns the value of the test expression, the parent takes its truth. The
program therefore never sees the expected values, and nothing it can read (files, the runner's
code, a caller's frame) lets it forge a pass; an early ``os._exit(0)``/``sys.exit`` leaves
values missing and grades as an error. Not caught: a program that prints the right values
without computing them (hard-coding the prompt's tests), and for an assert without a literal side
(3 of MBPP's 2,922) code that fakes its value by inspecting the interpreter.

Order: ``code``, then ``setup`` (MBPP's test_setup_code), then the asserts (tasks 367 and 927 need
it). Status: "passed", "failed" (an assert's value differs), "timeout" (wall clock or CPU limit),
"error" (anything else: syntax/name errors, MemoryError, a blocked operation, an early exit).
"""

from __future__ import annotations

import ast
import functools
import logging
import marshal
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

UNSAFE_KEY = "text.eval.unsafe_code_exec"
_TAIL = 2000
_CGROUP_PIDS = Path("/sys/fs/cgroup/pids")
_SANDBOX_ID = 65534

# Runs inside the sandbox. Reads {"code", "probes", limits} (marshal) from stdin; writes one line per
# probe to the channel fd: i TAB v TAB canonical-repr, or i TAB x TAB exception; then -1 TAB end.
_RUNNER = r"""
import marshal, os, resource, sys
cfg = marshal.loads(sys.stdin.buffer.read())
os.close(0)
os.open(os.devnull, os.O_RDONLY)
chan = os.fdopen(cfg["fd"], "w", buffering=1)
for what, value in ((resource.RLIMIT_AS, cfg["mem"]), (resource.RLIMIT_CPU, cfg["cpu"]),
                    (resource.RLIMIT_FSIZE, 8 << 20), (resource.RLIMIT_CORE, 0),
                    (resource.RLIMIT_NPROC, cfg["nproc"])):
    if value is not None:
        resource.setrlimit(what, (value, value))
if cfg["hook"]:
    _DENY = ("socket.", "subprocess.", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
             "os.forkpty", "pty.", "os.kill", "os.killpg", "ctypes.")
    def _hook(event, args):
        if event.startswith(_DENY):
            raise PermissionError("sandbox: " + event + " is blocked")
    sys.addaudithook(_hook)

def say(*parts):
    chan.write("\t".join(str(p).replace("\n", " ").replace("\t", " ") for p in parts) + "\n")

def error(e):
    import traceback
    traceback.print_exc()
    return "%s: %s" % (type(e).__name__, str(e)[:200])

def canon(v, depth=0):
    # repr of v rebuilt from builtin types only (None on anything else)
    if depth > 50:
        return None
    t = type(v)
    if v is None or t in (bool, int, str, bytes):
        return repr(v)
    if t is float:
        return repr(v) if v == v and abs(v) != float("inf") else "float(%r)" % repr(v)
    if t is complex:
        return "complex(%r)" % repr(v)
    for base in (int, float, complex, str, bytes):
        if isinstance(v, base):
            return canon(base.__new__(base, v), depth + 1)
    if isinstance(v, (list, tuple, set, frozenset)):
        base = next(b for b in (list, tuple, set, frozenset) if isinstance(v, b))
        parts = [canon(x, depth + 1) for x in base.__iter__(v)]
        if None in parts:
            return None
        return "%s([%s])" % (base.__name__, ", ".join(parts))
    if isinstance(v, dict):
        parts = [(canon(k, depth + 1), canon(x, depth + 1)) for k, x in dict.items(v)]
        if any(None in p for p in parts):
            return None
        return "dict([%s])" % ", ".join("(%s, %s)" % p for p in parts)
    import numbers
    if isinstance(v, numbers.Integral):
        return canon(int.__new__(int, v.__index__()), depth + 1)
    if isinstance(v, numbers.Real):
        return canon(float.__new__(float, v.__float__()), depth + 1)
    return None

g = {"__name__": "__main__"}
say(-2, "start")
try:
    exec(compile(cfg["code"], "program.py", "exec"), g)
    for i, src in enumerate(cfg["probes"]):
        try:
            value = eval(compile(src, "assert_%d" % i, "eval"), g)
            c = canon(value)
            msg = (i, "v", c) if c is not None else (i, "x", "value of type %s cannot be judged" % type(value).__name__)
        except BaseException as e:
            msg = (i, "x", error(e))
        say(*msg)
        if msg[1] == "x":
            break
    else:
        say(-1, "end")
except BaseException as e:
    error(e)
sys.stderr.flush()
chan.flush()
os._exit(0)
"""


class SandboxUnavailable(RuntimeError):
    """No OS-level sandbox can be made here and unsafe execution was not allowed."""


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error"
    stderr_tail: str


@dataclass(frozen=True)
class Probe:
    """One assert: ``expr`` is evaluated in the sandbox; ``expected`` is kept by the parent."""

    src: str
    expr: str
    expected: object = None
    compare: bool = False  # True: value == expected; False: bool(value)


_state = {"allow_unsafe": False}


def configure(allow_unsafe: bool) -> None:
    """Set from ``text.eval.unsafe_code_exec`` before grading (default False: refuse without a sandbox)."""
    _state["allow_unsafe"] = bool(allow_unsafe)


def build_program(code: str, tests: list[str], setup: str = "") -> str:
    """``code``, then ``setup``, then one assert per line (the text a reader would run)."""
    return "\n".join([code, setup or "", *tests]) + "\n"


def _literal(node: ast.expr) -> tuple[bool, object]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def make_probes(tests: list[str]) -> list[Probe]:
    """Split each ``assert`` into what the sandbox evaluates and what the parent keeps."""
    out = []
    for t in tests:
        try:
            body = ast.parse(t).body
        except SyntaxError:
            body = []
        if len(body) != 1 or not isinstance(body[0], ast.Assert):
            # not a single assert: run it as is; its value (None) must not be judged false
            out.append(Probe(t, f"exec({t!r}) or True"))
            continue
        test = body[0].test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            for side, other in ((test.comparators[0], test.left), (test.left, test.comparators[0])):
                ok, value = _literal(side)
                if ok:
                    out.append(Probe(t, ast.unparse(other), value, True))
                    break
            else:
                out.append(Probe(t, f"({ast.unparse(test.left)}) == ({ast.unparse(test.comparators[0])})"))
        else:
            out.append(Probe(t, ast.unparse(test)))
    return out


@functools.lru_cache(maxsize=1)
def _bwrap() -> str | None:
    """Path of a working bwrap (checked once by starting ``true`` in a sandbox), else None."""
    exe = shutil.which("bwrap")
    if not exe:
        return None
    try:
        ok = subprocess.run([exe, "--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                             "--uid", str(_SANDBOX_ID), "--gid", str(_SANDBOX_ID), "true"],
                            capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return exe if ok else None


def _cgroup_candidates() -> list[Path]:
    """Where a pids cgroup for the sandboxes may be made: the cgroup-v1 pids hierarchy, else (v2) a
    child of this process's own cgroup (works where the pids controller is delegated to it)."""
    out = [_CGROUP_PIDS / "rm_sandbox"]
    try:
        own = next(line[3:] for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
        out.append(Path("/sys/fs/cgroup") / own.lstrip("/") / "rm_sandbox")
    except (OSError, StopIteration):
        pass
    return out


@functools.lru_cache(maxsize=1)
def _pids_cgroup_root() -> Path | None:
    """A folder under which a cgroup with ``pids.max`` can be made (root callers need it: RLIMIT_NPROC
    does not bind uid 0), or None."""
    for base in _cgroup_candidates():
        if not (base.parent / "cgroup.procs").is_file():  # not a cgroup file system
            continue
        try:
            base.mkdir(exist_ok=True)
            if base.parent.name != "pids":  # cgroup v2: the controller must be enabled for the children
                (base / "cgroup.subtree_control").write_text("+pids")
            _drop_stale(base)
            probe = base / f"probe-{uuid.uuid4().hex}"
            probe.mkdir()
            try:
                (probe / "pids.max").write_text("4")
            finally:
                probe.rmdir()
            return base
        except OSError:
            continue
    return None


def _drop_stale(base: Path, age_s: float = 3600) -> None:
    """Remove empty sandbox cgroups left by graders that were killed (older than ``age_s``)."""
    for cg in base.iterdir():
        try:
            if cg.is_dir() and time.time() - cg.stat().st_mtime > age_s:
                cg.rmdir()  # fails (EBUSY) while it holds processes
        except OSError:
            pass


def sandbox_problem() -> str | None:
    """Why no OS sandbox can be made here, or None when one can."""
    if _bwrap() is None:
        return "bubblewrap (bwrap) is missing or cannot create namespaces here"
    if os.geteuid() == 0 and _pids_cgroup_root() is None:
        return "running as root without a writable pids cgroup (no process-count cap binds root)"
    return None


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _TAIL))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _visible() -> list[str]:
    """bwrap arguments for the read-only part of the file system: /usr, /etc (without shadow files),
    the /bin-/lib links or folders, and the Python installation(s) running this. Nothing else of
    the host (home folders, the repository, benchmark data with the expected answers) is visible."""
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for name in ("shadow", "gshadow"):
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", "/dev/null", f"/etc/{name}"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                                              os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))}
    for p in sorted(prefixes):
        if not p.startswith(("/usr/", "/etc/")) and p not in ("/usr", "/"):
            args += ["--ro-bind", p, p]
    for p in sorted({sys.prefix, sys.base_prefix} - prefixes):  # a symlinked prefix: its own path too
        args += ["--ro-bind", p, p]
    return args


def _bwrap_cmd(exe: str, disk_mb: int) -> list[str]:
    return [exe, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
            "--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp",
            # the private /tmp first: an interpreter installed under the host's /tmp (a checkout or
            # venv there) is then bound on top of it, read-only, instead of being hidden by it
            "--size", str(int(disk_mb) << 20), "--tmpfs", "/tmp",
            *_visible(), "--dev", "/dev", "--remount-ro", "/dev",
            "--size", str(1 << 20), "--tmpfs", "/dev/shm", "--proc", "/proc", "--chdir", "/tmp",
            "--uid", str(_SANDBOX_ID), "--gid", str(_SANDBOX_ID), "--hostname", "sandbox",
            "--remount-ro", "/", "--"]


def _new_cgroup(max_procs: int) -> Path:
    cg = _pids_cgroup_root() / uuid.uuid4().hex
    cg.mkdir()
    (cg / "pids.max").write_text(str(max_procs))
    return cg


def _drop_cgroup(cg: Path) -> None:
    """SIGKILL anything still in the cgroup, wait until it is empty, remove it."""
    deadline = time.monotonic() + 10
    while True:
        try:
            pids = [int(p) for p in (cg / "cgroup.procs").read_text().split()]
        except OSError:
            return
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            log.warning("sandbox cgroup %s still holds %s", cg, pids)
            return
        time.sleep(0.01)
    for _ in range(100):
        try:
            cg.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while the last task is being released
            time.sleep(0.01)


def _judge(probes: list[Probe], chan: str) -> tuple[str, str]:
    """(status, message) from the channel lines; the parent decides, the child only reports values."""
    msgs = [line.split("\t", 2) for line in chan.split("\n")[:-1]]
    if not msgs or msgs[0] != ["-2", "start"]:
        return "nostart", "the runner did not start"
    msgs = msgs[1:]
    for i, p in enumerate(probes):
        if i >= len(msgs):
            return "error", f"the program stopped before assert {i + 1} ({p.src[:80]!r})"
        m = msgs[i]
        if len(m) != 3 or m[0] != str(i) or m[1] not in ("v", "x"):
            return "error", f"verdict channel: unexpected message {str(m)[:80]!r}"
        if m[1] == "x":
            status = "failed" if m[2].startswith("AssertionError") else "error"
            return status, f"assert {i + 1} raised {m[2]}"
        try:
            value = _decode(m[2])
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return "error", "verdict channel: undecodable value"
        try:
            ok = bool(value == p.expected) if p.compare else bool(value)
        except Exception as e:  # e.g. comparing nan-containing structures never raises; be safe
            return "error", f"comparison failed: {e}"
        if not ok:
            return "failed", f"AssertionError: {p.src[:200]} (got {m[2][:200]})"
    rest = msgs[len(probes):]
    if not rest:
        return "error", "the program did not run to its end (an exception or an exit; see above)"
    if rest != [["-1", "end"]]:
        return "error", "verdict channel: unexpected messages after the asserts"
    return "passed", ""


_DECODE_NAMES = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "dict": dict,
                 "float": float, "complex": complex}


def _decode(text: str) -> object:
    """Inverse of the runner's ``canon``: literals plus calls of list/tuple/set/frozenset/dict/float/complex."""

    def ev(node):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _DECODE_NAMES \
                and not node.keywords and len(node.args) == 1:
            arg = node.args[0]
            f = _DECODE_NAMES[node.func.id]
            if f in (float, complex):
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    raise ValueError("bad float")
                return f(arg.value)
            if not isinstance(arg, ast.List):
                raise ValueError("bad container")
            items = [ev(x) for x in arg.elts]
            if f is dict:
                if not all(isinstance(x, tuple) and len(x) == 2 for x in items):
                    raise ValueError("bad dict")
            return f(items)
        if isinstance(node, ast.Tuple):
            return tuple(ev(x) for x in node.elts)
        if isinstance(node, ast.Constant) and not isinstance(node.value, type(...)):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return -node.operand.value
        raise ValueError(f"unexpected {type(node).__name__}")

    return ev(ast.parse(text, mode="eval").body)


def run_program(code: str, probes: list[Probe], timeout: float = 10.0, memory_mb: int = 512, disk_mb: int = 16,
                max_procs: int = 8, audit_hook: bool = True) -> SandboxResult:
    """Run ``code`` then evaluate each probe in the sandbox; the parent judges the values."""
    problem = sandbox_problem()
    if problem and not _state["allow_unsafe"]:
        raise SandboxUnavailable(
            f"refusing to run generated code: {problem}. Install bubblewrap (apt-get install bubblewrap), "
            f"or set {UNSAFE_KEY}: true to run it WITHOUT isolation (unsafe)")
    cfg = {"code": code, "probes": [p.expr for p in probes], "mem": int(memory_mb) << 20,
           "cpu": int(math.ceil(timeout)) + 1, "hook": bool(audit_hook),
           "nproc": None if os.geteuid() == 0 or problem else int(max_procs)}
    with tempfile.TemporaryDirectory(prefix="rm_sandbox_", ignore_cleanup_errors=True) as tmp:
        out, err, chan = (Path(tmp, n) for n in ("stdout", "stderr", "channel"))
        cg = None
        if problem:
            log.warning("running generated code WITHOUT an OS sandbox (%s: true): %s", UNSAFE_KEY, problem)
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": tmp, "TMPDIR": tmp}
            cmd, cwd = [sys.executable, "-I", "-B", "-c", _RUNNER], tmp
        else:
            env, cwd = {}, "/"
            # absolute: a relative interpreter path (python started as ../.venv/bin/python) names host
            # folders the sandbox does not mount, or resolves against the sandbox's own cwd
            cmd = [*_bwrap_cmd(_bwrap(), disk_mb), os.path.abspath(sys.executable), "-I", "-B", "-c", _RUNNER]
            if os.geteuid() == 0:
                cg = _new_cgroup(max_procs)
                cmd = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cg / "cgroup.procs"), *cmd]
        try:
            with open(out, "wb") as fo, open(err, "wb") as fe, open(chan, "wb") as fc:
                cfg["fd"] = fc.fileno()  # pass_fds keeps the number in the child
                proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=fo, stderr=fe,
                                        pass_fds=(fc.fileno(),), start_new_session=True)
                try:
                    proc.communicate(marshal.dumps(cfg), timeout=timeout)
                    timed_out = False
                except subprocess.TimeoutExpired:
                    timed_out = True
                except BrokenPipeError:  # it exited before reading its input (e.g. bwrap failed)
                    try:
                        proc.wait(timeout=timeout)
                        timed_out = False
                    except subprocess.TimeoutExpired:
                        timed_out = True
                finally:
                    _kill(proc)
        finally:
            if cg is not None:
                _drop_cgroup(cg)
        tail = _tail(err)
        if timed_out:
            return SandboxResult(False, "timeout", tail)
        status, msg = _judge(probes, chan.read_text(errors="replace"))
        killed = proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL)
        if status == "nostart":
            if killed:
                return SandboxResult(False, "timeout", tail)
            raise RuntimeError(f"the code sandbox failed to start (exit {proc.returncode}): {tail[-500:]}")
        if status == "error" and killed and "MemoryError" not in tail:
            status = "timeout"
        return SandboxResult(status == "passed", status, (tail + ("\n" + msg if msg else "")).strip())


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the process group (bwrap and its namespace with it) and reap."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_tests(code: str, tests: list[str], setup: str = "", timeout: float = 10.0, memory_mb: int = 512,
              **kw) -> SandboxResult:
    """Run ``code`` + ``setup`` in the sandbox, then judge ``tests`` (assert strings)."""
    program = "\n".join([code, setup or ""]) + "\n"
    return run_program(program, make_probes(list(tests)), timeout=timeout, memory_mb=memory_mb, **kw)
