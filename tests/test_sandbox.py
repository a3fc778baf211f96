"""Escapes from the code grader's sandbox, each tried with small limits and short timeouts.

Programs report the host pid of every process they start on stderr ("PID n"; /proc/self is the host's
procfs, so this is the host pid even inside a PID namespace); each test asserts that none of them is still
alive, and the `strays` fixture kills any survivor so a failing test never leaves one behind. Network
traffic goes only to listeners on 127.0.0.1 that the test itself opens.
"""
import os
import re
import signal
import socket
import sys
import threading
import time

import pytest

from dllmq.eval.grading import check_code_many, run_program
from dllmq.eval.sandbox import NAMESPACE_MODES, Limits, run

MODES = list(NAMESPACE_MODES)  # "auto" (namespaces), "user" (via a user namespace), "none" (fallback)
HOSTPID = "import os, sys, time\ndef hostpid():\n    return int(os.readlink('/proc/self'))\n"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox escapes are Linux-specific")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return state != "Z" and b"program.py" in f.read()
    except OSError:
        return False


def _pids(result) -> list:
    return [int(p) for p in re.findall(r"PID (\d+)", result.stderr)]


@pytest.fixture
def strays():
    """Collects reported pids; asserts-by-test, kills-by-teardown."""
    seen = []
    yield seen
    for pid in seen:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _assert_gone(pids, within=1.0):
    end = time.monotonic() + within
    while any(map(_alive, pids)) and time.monotonic() < end:
        time.sleep(0.02)
    assert not [p for p in pids if _alive(p)], "sandboxed processes survived"


@pytest.mark.parametrize("mode", MODES)
def test_detached_double_forked_child_dies_with_a_passing_program(mode, strays):
    program = HOSTPID + (
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.write(w, str(hostpid()).encode())\n"
        "        for fd in (0, 1, 2):\n"
        "            os.close(fd)\n"
        "        while True:\n"
        "            open('log', 'a').write('x')\n"
        "            time.sleep(0.05)\n"
        "    os._exit(0)\n"
        "print('PID', os.read(r, 20).decode(), file=sys.stderr)\n")
    result = run_program(program, timeout=5, limits=Limits(namespaces=mode))
    strays.extend(_pids(result))
    assert result.passed, result.output
    assert len(strays) == 1
    _assert_gone(strays)


@pytest.mark.parametrize("mode", MODES)
def test_setsid_child_is_killed_at_the_timeout(mode, strays):
    program = HOSTPID + (
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    os.write(w, str(hostpid()).encode())\n"
        "    for fd in (0, 1, 2):\n"
        "        os.close(fd)\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "print('PID', os.read(r, 20).decode(), file=sys.stderr, flush=True)\n"
        "while True:\n    pass\n")
    result = run_program(program, timeout=1.0, limits=Limits(namespaces=mode))
    strays.extend(_pids(result))
    assert result.status == "timeout" and len(strays) == 1
    _assert_gone(strays)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("nap", ["30", "10**9"])  # a long sleep, and one that never ends
def test_grandchild_holding_stderr_does_not_delay_the_timeout(mode, nap, strays):
    program = HOSTPID + (
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        print('PID', hostpid(), file=sys.stderr, flush=True)\n"
        f"        time.sleep({nap})\n"
        "    os._exit(0)\n"
        "while True:\n    pass\n")
    start = time.monotonic()
    result = run_program(program, timeout=1.5, limits=Limits(namespaces=mode))
    elapsed = time.monotonic() - start
    strays.extend(_pids(result))
    assert result.status == "timeout" and len(strays) == 1
    assert elapsed < 1.5 + 2.0, elapsed
    _assert_gone(strays)


@pytest.mark.parametrize("mode", MODES)
def test_passing_program_returns_although_a_grandchild_holds_stderr_forever(mode, strays):
    program = HOSTPID + (
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    print('PID', hostpid(), file=sys.stderr, flush=True)\n"
        "    while True:\n        time.sleep(1000)\n"
        "time.sleep(0.2)\n")
    start = time.monotonic()
    result = run_program(program, timeout=5, limits=Limits(namespaces=mode))
    strays.extend(_pids(result))
    assert result.passed and len(strays) == 1
    assert time.monotonic() - start < 3.0
    _assert_gone(strays)


def _listeners():
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    tcp.settimeout(0.5)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    return tcp, udp


@pytest.mark.parametrize("mode", MODES)
def test_no_network_even_to_loopback(mode):
    tcp, udp = _listeners()
    received = []

    def listen():
        try:
            conn, _ = tcp.accept()
            received.append(conn.recv(100))
        except OSError:
            pass
        try:
            received.append(udp.recv(100))
        except OSError:
            pass
    program = (
        "import socket, sys\n"
        "blocked = 0\n"
        "try:\n"
        f"    s = socket.create_connection(('127.0.0.1', {tcp.getsockname()[1]}), timeout=1)\n"
        "    s.sendall(b'tcp leak')\n"
        "except OSError as e:\n"
        "    blocked += 1\n"
        "try:\n"
        f"    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'udp leak', ('127.0.0.1', {udp.getsockname()[1]}))\n"
        "except OSError as e:\n"
        "    blocked += 1\n"
        "print('BLOCKED', blocked, file=sys.stderr)\n")
    try:
        result = run_program(program, timeout=5, limits=Limits(namespaces=mode))
        thread = threading.Thread(target=listen)
        thread.start()
        thread.join()
    finally:
        tcp.close()
        udp.close()
    assert result.passed, result.output
    assert received == [] and "BLOCKED 2" in result.output
    assert result.isolation["network"] in ("network namespace", "seccomp (AF_UNIX only)")


def _rss_peak_mib() -> float:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024


def test_100_mb_on_stderr_is_not_buffered():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS so the growth below is this call's
    except OSError:
        pass
    before = _rss_peak_mib()
    program = "import sys\nblock = b'e' * (1 << 20)\nfor _ in range(100):\n    sys.stderr.buffer.write(block)\n"
    result = run_program(program, timeout=20, limits=Limits(output_bytes=4096))
    assert result.passed
    assert result.stderr_bytes == 100 << 20
    assert len(result.stderr) == 4096 and len(result.output) <= 4096
    assert _rss_peak_mib() - before < 40


@pytest.mark.parametrize("mode", MODES)
def test_a_large_file_write_is_stopped_by_the_file_size_limit(mode):
    # CPython ignores SIGXFSZ, so RLIMIT_FSIZE surfaces as OSError(EFBIG) at the limit.
    program = ("import errno, os, sys\n"
               "try:\n"
               "    with open('big.bin', 'wb') as f:\n"
               "        for _ in range(8):\n"
               "            f.write(b'\\0' * (1 << 20))\n"
               "            f.flush()\n"
               "finally:\n"
               "    print('SIZE', os.path.getsize('big.bin'), file=sys.stderr)\n")
    result = run_program(program, timeout=5, limits=Limits(file_bytes=1 << 20, namespaces=mode))
    assert result.status == "failed" and result.returncode == 1
    assert "File too large" in result.stderr and f"SIZE {1 << 20}" in result.stderr


@pytest.mark.parametrize("mode", MODES)
def test_fork_bomb_is_bounded_and_cleaned_up(mode, strays):
    program = HOSTPID + (
        "made = 0\n"
        "for _ in range(50):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        print('PID', hostpid(), file=sys.stderr, flush=True)\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    made += 1\n"
        "time.sleep(0.3)\n"
        "print('FORKED', made, file=sys.stderr)\n")
    result = run_program(program, timeout=5, limits=Limits(processes=8, namespaces=mode))
    strays.extend(_pids(result))
    assert result.passed, result.output
    made = int(re.search(r"FORKED (\d+)", result.stderr).group(1))
    assert 1 <= made < 8 and len(strays) == made
    _assert_gone(strays)


@pytest.mark.parametrize("mode", MODES)
def test_what_already_worked_still_works(mode):
    limits = Limits(namespaces=mode)
    probe = ("import os, sys\n"
             "assert sorted(os.listdir('.')) == ['program.py'], os.listdir('.')\n"
             "assert not any('site-packages' in p for p in sys.path), sys.path\n"
             "open('scratch.txt', 'w').write('cwd is writable')\n"
             "try:\n    import dllmq\nexcept ImportError:\n    pass\nelse:\n    raise SystemExit(3)\n")
    assert run_program(probe, limits=limits).passed
    start = time.monotonic()
    assert run_program("while True:\n    pass\n", timeout=1.0, limits=limits).status == "timeout"
    assert time.monotonic() - start < 3.0
    big_stdout = "import sys\nblock = b'o' * (1 << 20)\nfor _ in range(100):\n    sys.stdout.buffer.write(block)\n"
    assert run_program(big_stdout, timeout=20, limits=limits).passed


def test_filesystem_claim_matches_what_a_program_can_write(tmp_path):
    target = tmp_path / "outside.txt"
    program = (f"import sys\ntry:\n    open({str(target)!r}, 'w').write('escaped')\n"
               "except OSError as e:\n    print('DENIED', e.errno, file=sys.stderr)\n")
    result = run_program(program)
    assert result.passed
    assert result.isolation["filesystem"].startswith("read-only") == (not target.exists())
    assert ("DENIED" in result.output) == (not target.exists())


def test_each_run_reports_its_isolation_and_namespace_modes_differ():
    auto = run("pass", 5.0).isolation
    fallback = run("pass", 5.0, Limits(namespaces="none")).isolation
    for report in (auto, fallback):
        assert {"processes", "network", "filesystem", "user", "processes_limit"} <= set(report)
    assert fallback["processes"] == "process tracking"
    assert fallback["network"] == "seccomp (AF_UNIX only)" or os.uname().machine not in ("x86_64", "aarch64")


def test_exit_status_and_signals_are_reported():
    assert run_program("raise SystemExit(7)").returncode == 7
    killed = run_program("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    assert killed.returncode == -signal.SIGTERM and "killed by SIGTERM" in killed.output


def test_concurrent_runs_keep_their_order():
    programs = ["pass", "raise SystemExit(1)", "import sys\nprint('x', file=sys.stderr)\nraise SystemExit(2)", "pass"]
    results = check_code_many(programs, timeout=5, workers=2)
    assert [r.returncode for r in results] == [0, 1, 2, 0]


def test_no_cgroup_is_left_behind():
    run("pass", 5.0)
    base = "/sys/fs/cgroup/pids"
    if os.path.isdir(base):
        assert not [d for d in os.listdir(base) if d.startswith(f"dllmq-sandbox-{os.getpid()}-")]


@pytest.mark.parametrize("bad, match", [
    (dict(memory_bytes=0), "memory_bytes"), (dict(processes=-1), "processes"), (dict(file_bytes=1.5), "file_bytes"),
    (dict(open_files=3), "open_files"), (dict(namespaces="maybe"), "namespaces"), (dict(output_bytes=True), "output_bytes"),
])
def test_bad_limits_are_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        Limits(**bad)
