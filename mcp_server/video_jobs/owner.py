"""Who holds a video job's lease, and whether a holder is provably gone (so its jobs need not wait out the lease).

A holder id is `host:pid:token`, and on Linux `host:pid:token:machine:start` too: `machine` names this kernel boot
and PID namespace (a digest of /proc/sys/kernel/random/boot_id and /proc/self/ns/pid), `start` is the process's
start time in clock ticks since boot (/proc/<pid>/stat, field 22). A holder is gone only when it ran in this same
boot and PID namespace and its pid now names no process, a zombie, or a process started at another time (the pid
was reused). Anything that cannot be proven (another host or container, an id without those parts, no /proc, a
process hidden from this user) counts as alive: its lease runs out as before.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import socket
from pathlib import Path

_PROC = Path("/proc")
_STARTTIME_FIELD = 22  # of /proc/<pid>/stat, counted from 1 (man 5 proc)
_EXITED_STATES = frozenset("ZXx")  # zombie, dead: the process has exited, its pid is not reused yet


@functools.cache
def machine() -> str | None:
    """This kernel boot and PID namespace, as a short digest; None where /proc cannot say (not Linux)."""
    try:
        boot_id = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        pid_namespace = os.readlink(_PROC / "self/ns/pid")
    except OSError:
        return None
    if not boot_id or not pid_namespace:
        return None
    return hashlib.sha256(f"{boot_id} {pid_namespace}".encode()).hexdigest()[:16]


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process in this PID namespace, or None when /proc does not show it."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # past "pid (comm)": comm may hold spaces and parentheses
    index = _STARTTIME_FIELD - 3  # the first field after comm is field 3, the state
    return (fields[0], fields[index]) if len(fields) > index else None


def process_holder_id() -> str:
    """This process's id in job leases (unique per start: the random token tells two starts apart anywhere)."""
    base = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    here, own = machine(), _stat(os.getpid())
    return f"{base}:{here}:{own[1]}" if here and own else base


def is_gone(holder: str) -> bool:
    """True only when `holder` is provably no longer running (see the module docstring); False when unsure."""
    parts = holder.split(":")
    here = machine()
    if len(parts) != 5 or here is None or parts[3] != here or not parts[1].isdigit():
        return False
    pid, started = int(parts[1]), parts[4]
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the pid exists
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False
    stat = _stat(pid)
    if stat is None:  # exited just now, or hidden from this user (hidepid): cannot tell which
        return False
    state, start = stat
    return start != started or state in _EXITED_STATES
