"""CPU time and memory of a process, read from /proc (Linux): steadier than wall time on a busy machine.

CPU time is summed over all of a process's threads from /proc/PID/task/*/schedstat (nanoseconds), so a
server's own cost per call can be compared even when other work shares the cores.
"""

from __future__ import annotations

import os
from pathlib import Path

# Per process: the last schedstat reading of each thread, and the total of threads seen to have ended. A worker
# thread (anyio's, the preview pool's) that exits between two readings would otherwise take its CPU time out of
# the sum and make a block's figure negative.
_last_seen: dict[int, dict[int, int]] = {}
_ended_ns: dict[int, int] = {}


def cpu_seconds(pid: int) -> float:
    """On-CPU time of every thread of `pid` so far, in seconds (NaN when /proc has no such process).

    Monotonic: a thread that ended since the last reading keeps counting with its last-read time (what it ran
    after that reading is lost, a small undercount, never a drop).
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return float("nan")
    seen = _last_seen.setdefault(pid, {})
    ended = _ended_ns.get(pid, 0)
    now: dict[int, int] = {}
    for name in tasks:
        tid = int(name)
        try:
            ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended between listdir and read: its last reading moves to `ended` below
        if ns < seen.get(tid, 0):  # the tid was reused by a new thread
            ended += seen[tid]
        now[tid] = ns
    ended += sum(ns for tid, ns in seen.items() if tid not in now)
    _last_seen[pid], _ended_ns[pid] = now, ended
    return (ended + sum(now.values())) / 1e9


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of the whole process, ended threads included (/proc/PID/stat; 10 ms ticks)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size now."""
    return _status_kb(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """High-water mark of the resident set (VmHWM); reset it with `reset_peak`."""
    return _status_kb(pid, "VmHWM") * 1024


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs). False when not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def children(pid: int | None = None) -> list[int]:
    """Direct child processes of `pid` (default: this process)."""
    parent = os.getpid() if pid is None else pid
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def child_running(marker: str, without: str = "--http") -> int | None:
    """The pid of this process's child whose command line has `marker` but not `without` (a stdio server)."""
    for pid in children():
        line = cmdline(pid)
        if marker in line and without not in line:
            return pid
    return None
