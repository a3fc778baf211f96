"""A sandbox for one untrusted Python program (the code grader's). Standard library only.

On Linux a program runs as three processes: launcher -> reaper -> program. The launcher is this file,
run by path as `python -I -S sandbox.py CONFIG`. It joins a pids cgroup when the evaluator made one
(root only), enters new PID, network and mount namespaces (directly as root, else inside a new user
namespace), and forks the reaper. The reaper is PID 1 of the new PID namespace: when the program exits,
or the reaper is killed, the kernel kills every process left in the namespace, re-parented or not. The
reaper makes every mount read-only except the working directory and forks the program. The program sets
its resource limits, gives up root (a spare uid when that uid can read the interpreter, otherwise all
capabilities), sets no_new_privs and execs `python -I -S program.py`.

Where namespaces are not permitted the launcher supervises the program itself: it becomes a child
subreaper, blocks every socket but AF_UNIX with a seccomp filter, and when the program exits it stops and
kills every descendant it finds in /proc. The evaluator tracks the same tree (descendants, session,
process group, sandbox uid) and kills it on timeout. Either way the evaluator reads stderr with a cap and
never waits past the deadline (plus a short grace).
"""
from __future__ import annotations

import ctypes
import errno
import itertools
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Set

LINUX = sys.platform.startswith("linux")
PROGRAM = "program.py"
NAMESPACE_MODES = ("auto", "user", "none")
_GRACE = 0.2  # s the evaluator waits for stderr EOF after the launcher exited
_TICK = 0.05  # s between /proc scans while tracking processes
_UID_BASE, _UID_SLOTS = 62000, 1000  # spare uids a root evaluator runs programs as

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 14, 1 << 18, 1 << 21, 1 << 24
PR_SET_PDEATHSIG, PR_SET_SECCOMP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 22, 36, 38


@dataclass(frozen=True)
class Limits:
    """Per-program limits. `processes` counts the program's own processes and threads.
    `namespaces`: "auto" (namespaces where permitted), "user" (always through a user namespace),
    "none" (skip them: the process-tracking and seccomp fallback)."""
    memory_bytes: int = 1 << 30
    file_bytes: int = 64 << 20
    processes: int = 64
    open_files: int = 256
    output_bytes: int = 64 << 10
    namespaces: str = "auto"

    def __post_init__(self) -> None:
        for name in ("memory_bytes", "file_bytes", "processes", "open_files", "output_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{name}={value!r} must be a positive int")
        if self.open_files < 16:
            raise ValueError(f"Limits.open_files={self.open_files} must be >= 16 (Python needs a few)")
        if self.namespaces not in NAMESPACE_MODES:
            raise ValueError(f"Limits.namespaces={self.namespaces!r} must be one of {NAMESPACE_MODES}")


@dataclass
class Outcome:
    """What a sandboxed run did. returncode: the program's exit status, -N when signal N killed it,
    None when it timed out. stderr: its last `output_bytes` bytes; stderr_bytes: how many it wrote."""
    returncode: Optional[int]
    timed_out: bool
    stderr: bytes
    stderr_bytes: int
    isolation: Dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------- /proc process table

def proc_table(with_uid: bool = False) -> Dict[int, tuple]:
    """pid -> (ppid, pgid, sid, starttime, state, real uid or None) for every process in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            uid = None
            if with_uid:
                with open(f"/proc/{name}/status", "rb") as f:
                    uid = int(re.search(rb"\nUid:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            continue  # gone meanwhile
        rest = stat[stat.rindex(b")") + 2:].split()
        table[int(name)] = (int(rest[1]), int(rest[2]), int(rest[3]), int(rest[19]), rest[0].decode(), uid)
    return table


def descendants(table: Dict[int, tuple], roots: Set[int]) -> Set[int]:
    """Every process below `roots` by parent links (roots themselves excluded unless re-reached)."""
    children: Dict[int, list] = {}
    for pid, row in table.items():
        children.setdefault(row[0], []).append(pid)
    found: Set[int] = set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def freeze_and_kill(choose: Callable[[Dict[int, tuple]], Set[int]], rounds: int = 100,
                    with_uid: bool = False) -> int:
    """SIGSTOP every chosen process, rescanning until no new one appears (a stopped process cannot
    fork), then SIGKILL them all. Returns how many were killed."""
    me, stopped = os.getpid(), {}
    for _ in range(rounds):
        table = proc_table(with_uid)
        new = {p for p in choose(table) if p != me and p in table and table[p][4] != "Z"
               and stopped.get(p) != table[p][3]}
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
            stopped[pid] = table[pid][3]
    for pid, start in stopped.items():
        row = proc_table().get(pid)
        if row is not None and row[3] == start:  # never a recycled pid
            _signal(pid, signal.SIGKILL)
    return len(stopped)


# ----------------------------------------------------------------------------- child side (launcher)

def _libc():
    lib = ctypes.CDLL(None, use_errno=True)
    lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    lib.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return lib


def _prctl(option: int, arg: int = 0, arg3: int = 0) -> bool:
    return _libc().prctl(option, arg, arg3, 0, 0) == 0


def _unshare(flags: int) -> bool:
    return _libc().unshare(ctypes.c_int(flags)) == 0


def _mount(source: Optional[str], target: str, flags: int) -> bool:
    enc = (lambda s: None if s is None else os.fsencode(s))
    return _libc().mount(enc(source), enc(target), None, flags, None) == 0


def _write(path: str, text: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(text)
        return True
    except OSError:
        return False


def _report(fd: int, **items) -> None:
    os.write(fd, (json.dumps(items) + "\n").encode())


def _readable_by(uid: int) -> bool:
    """Whether `uid` can run this interpreter and read its standard library (checked by access()
    with the real ids set to `uid`; root may switch back)."""
    paths = [(os.path.realpath(sys.executable), os.X_OK), (os.__file__, os.R_OK),
             (os.path.dirname(os.__file__), os.R_OK | os.X_OK)]
    if getattr(select, "__file__", None):
        paths.append((os.path.dirname(select.__file__), os.R_OK | os.X_OK))
    try:
        os.setgroups([])
        os.setresgid(uid, 0, 0)
        os.setresuid(uid, 0, 0)
        return all(os.access(path, mode) for path, mode in paths)
    except OSError:
        return False
    finally:
        os.setresuid(0, 0, 0)
        os.setresgid(0, 0, 0)


def _become(uid: int) -> None:
    if os.geteuid() == 0:
        os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def _drop_capabilities() -> None:
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]
    if _libc().capset(ctypes.byref(Header(0x20080522, 0)), (Data * 2)()) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _block_network() -> bool:
    """seccomp: socket() of any family but AF_UNIX and io_uring_setup fail with EACCES, kill(-1, ...)
    fails with EPERM, other ABIs are killed. Needs no_new_privs; False where the arch is unknown."""
    arch = {"x86_64": (0xC000003E, 41, 62, 425), "aarch64": (0xC00000B7, 198, 129, 425)}.get(os.uname().machine)
    if arch is None:
        return False
    audit, nr_socket, nr_kill, nr_uring = arch
    allow, kill = 0x7FFF0000, 0x80000000
    deny_socket, deny_kill = 0x00050000 | errno.EACCES, 0x00050000 | errno.EPERM
    # (opcode, k, jump-if-true label, jump-if-false label); None falls through. 0x20 load, 0x15 jeq, 0x35 jge, 0x06 ret.
    code = [("arch", 0x20, 4, None, None), (None, 0x15, audit, None, "kill"), (None, 0x20, 0, None, None),
            (None, 0x35, 0x40000000, "kill", None), (None, 0x15, nr_uring, "deny_socket", None),
            (None, 0x15, nr_kill, "kill_arg", None), (None, 0x15, nr_socket, None, "allow"),
            (None, 0x20, 16, None, None), (None, 0x15, 1, "allow", "deny_socket"),
            ("kill_arg", 0x20, 16, None, None), (None, 0x15, 0xFFFFFFFF, "deny_kill", "allow"),
            ("allow", 0x06, allow, None, None), ("deny_socket", 0x06, deny_socket, None, None),
            ("deny_kill", 0x06, deny_kill, None, None), ("kill", 0x06, kill, None, None)]
    where = {label: i for i, (label, *_rest) in enumerate(code) if label}

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]
    jump = (lambda i, label: 0 if label is None else where[label] - i - 1)
    prog = (Filter * len(code))(*[Filter(op, jump(i, t), jump(i, f), k) for i, (_, op, k, t, f) in enumerate(code)])
    fprog = Program(len(code), prog)
    return _prctl(PR_SET_NO_NEW_PRIVS, 1) and _prctl(PR_SET_SECCOMP, 2, ctypes.addressof(fprog))


def _mount_points() -> list:
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    unescape = (lambda s: re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s))
    return [unescape(line.split()[4]) for line in lines]


def _kept_flags(path: str) -> int:
    """The per-mount flags a read-only remount must keep (a user namespace may not clear them)."""
    st = os.statvfs(path).f_flag
    flags = (st & os.ST_NOSUID and MS_NOSUID) | (st & os.ST_NODEV and MS_NODEV) | (st & os.ST_NOEXEC and MS_NOEXEC)
    flags |= st & os.ST_NODIRATIME and MS_NODIRATIME
    if st & os.ST_NOATIME:
        return flags | MS_NOATIME
    return flags | (MS_RELATIME if st & os.ST_RELATIME else MS_STRICTATIME)


def _read_only_except(keep: str) -> str:
    """In a private mount namespace: every mount read-only, `keep` (bind-mounted on itself) writable."""
    if not (_mount(None, "/", MS_REC | MS_PRIVATE) and _mount(keep, keep, MS_BIND)):
        return "writable (mount failed)"
    os.chdir(keep)  # re-enter through the new bind mount; the old cwd is on the mount made read-only below
    failed = []
    for target in _mount_points():
        if target == keep:
            continue
        try:
            ok = _mount(None, target, MS_REMOUNT | MS_BIND | MS_RDONLY | _kept_flags(target))
        except OSError:
            ok = False
        if not ok:
            failed.append(target)
    return "read-only except cwd" if not failed else "read-only except cwd and " + ", ".join(sorted(set(failed)))


def _task_count(uid: int) -> int:
    """Processes and threads of `uid` (what RLIMIT_NPROC counts outside a user namespace)."""
    table = proc_table(with_uid=True)
    total = 0
    for pid, row in table.items():
        if row[5] == uid:
            try:
                total += len(os.listdir(f"/proc/{pid}/task"))
            except OSError:
                pass
    return total


def _exec_program(cfg: dict, uid: Optional[int], helpers: Optional[int]) -> None:
    """The program process: limits, no privileges, exec. Never returns. `helpers`: how many of our own
    processes RLIMIT_NPROC also counts; None: every task of this uid (no user namespace, no spare uid)."""
    try:
        import resource
        limits = [(resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_AS, cfg["memory"], cfg["memory"]),
                  (resource.RLIMIT_FSIZE, cfg["file"], cfg["file"]),
                  (resource.RLIMIT_NOFILE, cfg["files"], cfg["files"]),
                  (resource.RLIMIT_CPU, cfg["cpu"], cfg["cpu"] + 1)]
        if helpers is not None or LINUX:  # elsewhere there is no /proc to count the user's tasks
            nproc = cfg["processes"] + (_task_count(os.getuid()) - 1 if helpers is None else helpers)
            limits.append((resource.RLIMIT_NPROC, nproc, nproc))
        for limit, soft, hard in limits:
            try:
                resource.setrlimit(limit, (soft, hard))
            except (ValueError, OSError):
                if LINUX:
                    raise
        if LINUX:
            if uid is not None:
                _become(uid)
            _drop_capabilities()
            _prctl(PR_SET_NO_NEW_PRIVS, 1)
        os.execve(cfg["python"], [cfg["python"], "-I", "-S", PROGRAM], cfg["env"])
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(126)


def _spawn_and_reap(cfg: dict, uid: Optional[int], helpers: Optional[int], status: int) -> int:
    """Fork the program, reap every child until the program exits; report and return its status."""
    pid = os.fork()
    if pid == 0:
        _exec_program(cfg, uid, helpers)
    code = 126
    while True:
        try:
            child, wstatus = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if child == pid:
            code = os.waitstatus_to_exitcode(wstatus)
            break
    _report(status, exit=code)
    return code


def _exit_with(code: int) -> None:
    sys.stderr.flush()
    os._exit(code if code >= 0 else 128 - code)


def _spare_identity(cfg: dict) -> Optional[int]:
    """The spare uid the program will run as: root only, and only if that uid can read the interpreter
    (a Python under /root cannot be). The working directory is handed to it."""
    uid = cfg.get("uid")
    if not (LINUX and os.geteuid() == 0 and uid is not None and _readable_by(uid)):
        return None
    for path in (".", PROGRAM):
        os.chown(path, uid, uid)
    return uid


def _enter_namespaces(mode: str, uid: Optional[int]) -> int:
    """New PID, network and mount namespaces: directly as root ("auto"), else inside a new user namespace
    that maps the current ids (the spare uid, when there is one, so that RLIMIT_NPROC binds).
    Returns the namespaces entered, 0 when not permitted."""
    spaces = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS
    if not LINUX or mode == "none":
        return 0
    if mode == "auto" and os.geteuid() == 0 and _unshare(spaces):
        return spaces
    if uid is not None:
        _become(uid)
    outer_uid, outer_gid = os.geteuid(), os.getegid()
    if not _unshare(spaces | CLONE_NEWUSER):
        return 0
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{outer_uid} {outer_uid} 1")
    _write("/proc/self/gid_map", f"{outer_gid} {outer_gid} 1")
    return spaces | CLONE_NEWUSER


def _nproc_helpers(flags: int, uid: Optional[int], root: bool) -> Optional[int]:
    """How many of our processes RLIMIT_NPROC counts besides the program's: launcher and reaper in a user
    namespace (unshare moved the launcher into it), the launcher once it became the spare uid; None: all
    of this user's tasks (no namespace, no spare uid). The limit does not bind on kernel uid 0."""
    if flags & CLONE_NEWUSER:
        return 2
    if uid is not None:
        return 0 if flags else 1
    return None if not root else 0


def _launch(cfg: dict) -> None:
    """The launcher: namespaces when permitted, else supervise the program itself (module doc)."""
    status = cfg["status_fd"]
    os.set_inheritable(status, False)  # closed at the program's exec
    if LINUX:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != cfg["parent"]:
            os._exit(125)
    root = os.geteuid() == 0
    report = {}
    if cfg.get("cgroup") and _write(os.path.join(cfg["cgroup"], "cgroup.procs"), str(os.getpid())):
        report["processes_limit"] = "pids cgroup"
    uid = _spare_identity(cfg)
    flags = _enter_namespaces(cfg["namespaces"], uid)
    helpers = _nproc_helpers(flags, uid, root)
    if not flags and cfg.get("cgroup") and os.geteuid() == 0:  # it was sized for launcher + reaper
        _write(os.path.join(cfg["cgroup"], "pids.max"), str(cfg["processes"] + 1))
    if "processes_limit" not in report:
        binds = uid is not None or (not root and (LINUX or helpers is not None))
        report["processes_limit"] = "RLIMIT_NPROC" if binds else "none"
    report["user"] = f"uid {uid}" if uid is not None else "root without capabilities" if root else "unchanged"
    if flags:
        report.update(processes="pid namespace", network="network namespace")
        _report(status, **report)
        reaper = os.fork()
        if reaper == 0:
            try:
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                _report(status, filesystem=_read_only_except(os.getcwd()))
                code = _spawn_and_reap(cfg, uid, helpers, status)
            except BaseException:
                traceback.print_exc()
                code = 126
            _exit_with(code)  # as PID 1: the kernel now kills everything left in the namespace
        _exit_with(os.waitstatus_to_exitcode(os.waitpid(reaper, 0)[1]))
    tracked = LINUX and _prctl(PR_SET_CHILD_SUBREAPER, 1)
    report.update(processes="process tracking" if tracked else "process group",
                  network="seccomp (AF_UNIX only)" if LINUX and _block_network() else "not isolated",
                  filesystem="uid permissions" if uid is not None else "not isolated")
    _report(status, **report)
    code = _spawn_and_reap(cfg, uid, helpers, status)
    if tracked:
        freeze_and_kill(lambda table: descendants(table, {os.getpid()}))
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
    _exit_with(code)  # without /proc the evaluator kills the process group


# ----------------------------------------------------------------------------- evaluator side

_uid_lock = threading.Lock()
_uid_counter = itertools.count()
_cgroup_base: Dict[str, Optional[str]] = {}


def _spare_uid() -> Optional[int]:
    """A uid no local account uses, different for each concurrent run of this process (root only)."""
    if not LINUX or os.geteuid() != 0:
        return None
    import pwd
    with _uid_lock:
        for _ in range(_UID_SLOTS):
            uid = _UID_BASE + (next(_uid_counter) + os.getpid()) % _UID_SLOTS
            try:
                pwd.getpwuid(uid)
            except KeyError:
                return uid
    return None


def _pids_cgroup_base() -> Optional[str]:
    """Where a root evaluator may create pids cgroups (v1 hierarchy, or v2 with pids delegated), else None."""
    if "base" in _cgroup_base:
        return _cgroup_base["base"]
    base = None
    if LINUX and os.geteuid() == 0:
        try:
            with open("/proc/self/cgroup") as f:
                own = dict((line.split(":", 2)[1], line.split(":", 2)[2].strip()) for line in f if line.count(":") >= 2)
            with open("/proc/self/mountinfo") as f:
                mounts = [line.split() for line in f]
            for m in mounts:
                fstype, opts = m[m.index("-") + 1], m[-1].split(",")
                if fstype == "cgroup" and "pids" in opts:
                    key = next((k for k in own if "pids" in k.split(",")), None)
                    if key is not None and own[key].startswith(m[3]):
                        base = m[4] + own[key][len(m[3].rstrip("/")):]
                elif fstype == "cgroup2" and base is None and "" in own and own[""].startswith(m[3]):
                    path = m[4] + own[""][len(m[3].rstrip("/")):]
                    with open(os.path.join(path, "cgroup.subtree_control")) as f:
                        if "pids" in f.read().split():
                            base = path
            if base is not None:
                probe = os.path.join(base, f"dllmq-probe-{os.getpid()}")
                os.mkdir(probe)
                os.rmdir(probe)
        except (OSError, ValueError):
            base = None
    _cgroup_base["base"] = base
    return base


def _new_cgroup(processes: int) -> Optional[str]:
    base = _pids_cgroup_base()
    if base is None:
        return None
    with _uid_lock:
        path = os.path.join(base, f"dllmq-sandbox-{os.getpid()}-{next(_uid_counter)}")
    try:
        os.mkdir(path)
    except OSError:
        return None
    if not _write(os.path.join(path, "pids.max"), str(processes + 2)):  # + launcher and reaper
        _remove_cgroup(path)
        return None
    return path


def _remove_cgroup(path: str) -> None:
    end = time.monotonic() + 2.0
    while True:
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = [int(p) for p in f.read().split()]
        except OSError:
            pids = []
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > end:
                return
            time.sleep(0.01)


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the launcher has exited, without reaping it where waitid exists (its pid and process
    group id then stay reserved until the group is killed)."""
    if hasattr(os, "waitid"):
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    return proc.poll() is not None


class _Reader:
    """stderr kept as a tail of at most `cap` bytes; status lines parsed into a report."""

    def __init__(self, err: int, status: int, cap: int):
        self.err, self.status, self.cap = err, status, cap
        self.open, self.tail, self.total, self.lines, self.report = {err, status}, bytearray(), 0, b"", {}

    def read(self, fds) -> None:
        for fd in fds:
            data = os.read(fd, 1 << 16)
            if not data:
                self.open.discard(fd)
            elif fd == self.err:
                self.total += len(data)
                self.tail += data
                if len(self.tail) > self.cap:
                    del self.tail[:len(self.tail) - self.cap]
            else:
                self.lines += data
                *done, self.lines = self.lines.split(b"\n")
                for line in done:
                    self.report.update(json.loads(line))

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while self.open and time.monotonic() < end:
            ready, _, _ = select.select(list(self.open), [], [], max(0.0, end - time.monotonic()))
            self.read(ready)


def _choose(leader: int, uid: Optional[int], tracked: Dict[int, int]) -> Callable[[Dict[int, tuple]], Set[int]]:
    """The launcher, its descendants, its session and process group, the sandbox uid, anything seen before."""
    def choose(table: Dict[int, tuple]) -> Set[int]:
        chosen = {leader} if leader in table else set()
        chosen |= {p for p, row in table.items() if row[1] == leader or row[2] == leader
                   or (uid is not None and row[5] == uid)}
        chosen |= {p for p, start in tracked.items() if p in table and table[p][3] == start}
        return chosen | descendants(table, chosen | {leader})
    return choose


def run(source: str, timeout: float, limits: Limits = Limits(), python: Optional[str] = None) -> Outcome:
    """Run `source` as program.py in a fresh temporary directory under the sandbox; see the module doc."""
    if not timeout > 0:
        raise ValueError(f"timeout={timeout} must be > 0 seconds")
    python = python or sys.executable
    with tempfile.TemporaryDirectory(prefix="dllmq_grade_", ignore_cleanup_errors=True) as tmp:
        with open(os.path.join(tmp, PROGRAM), "w", encoding="utf-8") as f:
            f.write(source)
        env = {"PATH": os.defpath, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": tmp}
        if os.name != "posix":
            return _run_plain(python, tmp, env, timeout, limits)
        return _run_posix(python, tmp, env, timeout, limits, _spare_uid(), _new_cgroup(limits.processes))


def _run_posix(python, tmp, env, timeout, limits, uid, cgroup) -> Outcome:
    status_r, status_w = os.pipe()
    cfg = {"python": python, "env": env, "status_fd": status_w, "parent": os.getpid(), "uid": uid,
           "cgroup": cgroup, "namespaces": limits.namespaces, "cpu": int(timeout) + 1,
           "memory": limits.memory_bytes, "file": limits.file_bytes, "processes": limits.processes,
           "files": limits.open_files}
    deadline = time.monotonic() + timeout
    try:
        proc = subprocess.Popen([python, "-I", "-S", os.path.abspath(__file__), json.dumps(cfg)], cwd=tmp, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                pass_fds=(status_w,), start_new_session=True)
    finally:
        os.close(status_w)
    reader = _Reader(proc.stderr.fileno(), status_r, limits.output_bytes)
    tracked: Dict[int, int] = {}
    choose = _choose(proc.pid, uid, tracked)
    timed_out = False
    try:
        pidfd = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else None
    except OSError:
        pidfd = None
    try:
        exited_at, scanned = None, 0.0
        while True:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if _exited(proc):
                exited_at = exited_at or now
                if reader.err not in reader.open or now - exited_at >= _GRACE:
                    break
            tracking = LINUX and reader.report.get("processes") != "pid namespace"
            if tracking and now - scanned >= _TICK:
                table = proc_table(uid is not None)
                tracked.update((p, table[p][3]) for p in choose(table) if p in table)
                scanned = now
            wait = deadline - now
            if tracking or pidfd is None or exited_at:
                wait = min(wait, _TICK)
            fds = list(reader.open) + ([pidfd] if pidfd is not None and not exited_at else [])
            ready, _, _ = select.select(fds, [], [], wait)
            reader.read([fd for fd in ready if fd != pidfd])
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # launcher and reaper (the reaper's death empties the namespace)
        except (ProcessLookupError, PermissionError):
            pass
        if LINUX:
            freeze_and_kill(choose, with_uid=uid is not None)
        if cgroup:
            _remove_cgroup(cgroup)
        reader.drain(0.5)
        proc.stderr.close()
        os.close(status_r)
        if pidfd is not None:
            os.close(pidfd)
        proc.wait()
    report = dict(reader.report)
    code = report.pop("exit", None)
    if code is None and not timed_out:
        code = proc.returncode
    return Outcome(None if timed_out else code, timed_out, bytes(reader.tail), reader.total,
                   {k: str(v) for k, v in report.items()})


def _run_plain(python, tmp, env, timeout, limits) -> Outcome:
    """Not POSIX: no limits or isolation beyond the temporary directory; output capped, timeout kill."""
    proc = subprocess.Popen([python, "-I", "-S", PROGRAM], cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tail, total = bytearray(), [0]

    def pump() -> None:
        for chunk in iter(lambda: proc.stderr.read(1 << 16), b""):
            total[0] += len(chunk)
            tail.extend(chunk)
            del tail[:max(0, len(tail) - limits.output_bytes)]
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        timed_out = True
    reader.join(1.0)
    return Outcome(None if timed_out else proc.returncode, timed_out, bytes(tail), total[0],
                   {"processes": "child only", "network": "not isolated", "filesystem": "not isolated"})


if __name__ == "__main__":
    _launch(json.loads(sys.argv[1]))
