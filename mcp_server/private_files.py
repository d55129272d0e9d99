"""Files and folders genroute creates are its owner's only: 0700 folders, 0600 files, whatever the umask.

What genroute writes (the database with prompts, results and key hashes; health reports; media; the reference
images of video jobs) is nobody else's business, and a permissive umask (000 in some containers and service
managers) would otherwise leave it readable, even writable, by every local user. The modes are given when a file
or folder is created (a umask can only take bits away from them) and files are set to 0600 after opening, so a
file left wider by an older version is tightened when it is next written. Folders that already exist keep the
mode their owner gave them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def private_dir(path: Path) -> Path:
    """`path` as a folder, created owner-only if missing, with every missing parent (`mkdir -p -m 700`)."""
    try:
        path.mkdir(mode=DIR_MODE)
    except FileNotFoundError:
        if path.parent == path:
            raise
        private_dir(path.parent)
        return private_dir(path)
    except OSError:  # as Path.mkdir(exist_ok=True): an existing folder is fine (EEXIST, or EROFS and the like)
        if not path.is_dir():
            raise
    return path


def open_private(path: Path, flags: int) -> int:
    """os.open with O_CREAT, owner-only: a new file is created 0600 and an existing one (ours) set to 0600."""
    fd = os.open(path, flags | os.O_CREAT | _BINARY, FILE_MODE)
    if hasattr(os, "fchmod"):  # not on Windows before Python 3.13, where these modes mean little anyway
        try:
            with contextlib.suppress(PermissionError):  # someone else's file: not ours to change
                os.fchmod(fd, FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
    return fd


def create_private(path: Path) -> int:
    """A new file, opened for writing: exclusive and without following a link (O_EXCL | O_NOFOLLOW)."""
    return open_private(path, os.O_WRONLY | os.O_EXCL | _NOFOLLOW)


def write_private(path: Path, data: bytes) -> None:
    """`data` as the whole of `path` (replaced whole: written to a temporary next to it, then renamed)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = open_private(temporary, os.O_WRONLY | os.O_TRUNC | _NOFOLLOW)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def private_database(path: Path, companions: tuple[str, ...] = ("-wal", "-shm", "-journal")) -> None:
    """A database file (created empty if missing) and its existing companions, owner-only. SQLite creates its
    WAL and shared-memory files with the database file's mode, so this is what keeps them private too."""
    private_dir(path.parent)
    os.close(open_private(path, os.O_RDONLY))
    for suffix in companions:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(path.with_name(path.name + suffix), FILE_MODE)
