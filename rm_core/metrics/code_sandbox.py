"""Run generated Python against assert tests in a separate, limited process (MBPP, mini code).

The program is ``code``, then ``setup`` (MBPP's test_setup_code), then the asserts — the order
the data README verifies (tasks 367 and 927 need it). Nothing is executed in the calling process:
each call starts ``python -I -B`` on a runner script in a fresh temporary directory, with stdin
closed, an environment holding only PATH/LANG/HOME/TMPDIR (no proxies), stdout/stderr to files.

Limits, set by the runner in the child before the program is compiled (not via ``preexec_fn``,
which the subprocess docs call unsafe when the caller has threads, e.g. lm-eval workers):
RLIMIT_AS = memory_mb, RLIMIT_CPU = timeout + 1 s, RLIMIT_FSIZE = 8 MiB, RLIMIT_CORE = 0,
RLIMIT_NPROC = 0 (no new processes or threads). A wall-clock timeout kills the whole process
group (``start_new_session``).

Network and side effects, best effort:
- when unprivileged user namespaces work (checked once), the child runs under
  ``unshare -rn``: a new network namespace with no interfaces, so nothing can connect;
- always, an audit hook (``sys.addaudithook``; Python code cannot remove it) refuses every
  ``socket.*`` event, process creation (subprocess, os.system/exec/spawn/fork, pty),
  os.kill/killpg, ctypes loading, and file writes, renames and deletions outside the
  temporary directory.
This is NOT a security boundary against hostile code: C extensions, ``/proc`` tricks or an
interpreter bug can escape the hook, and without the namespace the process shares the
caller's network and files (same user). Use a container or VM for untrusted code at scale.

Status: "passed" (the runner reached its end), "failed" (an AssertionError), "timeout"
(wall clock or CPU limit), "error" (anything else: syntax/name errors, MemoryError, a blocked
operation, SystemExit, a signal).
"""

from __future__ import annotations

import functools
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

EXIT_FAILED, EXIT_ERROR = 3, 4
_TAIL = 2000

_RUNNER = r'''
import os, resource, sys, traceback
def _lim(what, value):
    try:
        resource.setrlimit(what, (value, value))
    except (ValueError, OSError):
        pass
_lim(resource.RLIMIT_AS, {mem})
_lim(resource.RLIMIT_CPU, {cpu})
_lim(resource.RLIMIT_FSIZE, 8 << 20)
_lim(resource.RLIMIT_CORE, 0)
_lim(resource.RLIMIT_NPROC, 0)
_ROOT = {root!r}
_DENY = ("socket.", "subprocess.", "os.system", "os.exec", "os.spawn", "os.posix_spawn",
         "os.fork", "os.forkpty", "pty.", "os.kill", "os.killpg", "ctypes.")
_PATHS = ("os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.truncate", "os.chmod",
          "os.chown", "os.link", "os.symlink", "os.utime", "shutil.rmtree", "shutil.move",
          "shutil.copyfile", "shutil.copytree")
_inside = lambda p: os.path.realpath(os.fsdecode(p)).startswith(_ROOT + os.sep)
def _hook(event, args):
    if event.startswith(_DENY):
        raise PermissionError("sandbox: " + event + " is blocked")
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        mode, flags = args[1] or "", args[2] or 0
        writes = any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if writes and not _inside(args[0]):
            raise PermissionError("sandbox: write outside the work dir")
    elif event in _PATHS:
        for a in args:
            if isinstance(a, (str, bytes, os.PathLike)) and not _inside(a):
                raise PermissionError("sandbox: " + event + " outside the work dir")
sys.addaudithook(_hook)
with open({prog!r}) as f:
    src = f.read()
try:
    exec(compile(src, "program.py", "exec"), {{"__name__": "__main__"}})
except AssertionError:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit({failed})
except BaseException:
    traceback.print_exc()
    sys.stderr.flush()
    os._exit({error})
with open({mark!r}, "w") as f:
    f.write({nonce!r})
sys.stdout.flush()
os._exit(0)
'''


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error"
    stderr_tail: str


def build_program(code: str, tests: list[str], setup: str = "") -> str:
    """``code``, then ``setup``, then one assert per line."""
    return "\n".join([code, setup or "", *tests]) + "\n"


@functools.lru_cache(maxsize=1)
def netns_prefix() -> tuple[str, ...]:
    """``("unshare", "-rn")`` when an unprivileged network namespace can be made here, else ()."""
    exe = shutil.which("unshare")
    if not exe:
        return ()
    try:
        ok = subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return (exe, "-rn") if ok else ()


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _TAIL))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def run_program(program: str, timeout: float = 10.0, memory_mb: int = 512, use_netns: bool = True) -> SandboxResult:
    """Execute ``program`` in the sandbox; "passed" iff it ran to its end."""
    with tempfile.TemporaryDirectory(prefix="rm_sandbox_", ignore_cleanup_errors=True) as tmp:
        root = os.path.realpath(tmp)
        prog, runner, mark = (os.path.join(root, n) for n in ("program.py", "_runner.py", "_done"))
        nonce = secrets.token_hex(16)
        Path(prog).write_text(program)
        Path(runner).write_text(
            _RUNNER.format(
                mem=int(memory_mb) << 20,
                cpu=int(math.ceil(timeout)) + 1,
                root=root,
                prog=prog,
                mark=mark,
                nonce=nonce,
                failed=EXIT_FAILED,
                error=EXIT_ERROR,
            )
        )
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": root, "TMPDIR": root}
        cmd = [*(netns_prefix() if use_netns else ()), sys.executable, "-I", "-B", runner]
        out, err = Path(root, "stdout"), Path(root, "stderr")
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(
                cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, start_new_session=True
            )
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return SandboxResult(False, "timeout", _tail(err))
        tail = _tail(err)
        done = os.path.exists(mark) and Path(mark).read_text() == nonce
        if rc == 0 and done:
            return SandboxResult(True, "passed", tail)
        if rc == EXIT_FAILED:
            return SandboxResult(False, "failed", tail)
        if rc in (-signal.SIGXCPU, -signal.SIGKILL) and "MemoryError" not in tail:
            return SandboxResult(False, "timeout", tail)
        return SandboxResult(False, "error", tail or f"exit status {rc}")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_tests(
    code: str, tests: list[str], setup: str = "", timeout: float = 10.0, memory_mb: int = 512
) -> SandboxResult:
    """Run ``code`` + ``setup`` + ``tests`` (assert strings) in the sandbox."""
    return run_program(build_program(code, list(tests), setup), timeout=timeout, memory_mb=memory_mb)
