"""The one way genroute runs a server's event loop: `anyio.run` on asyncio, with uvloop when it is installed.

Both transports go through here. uvloop (installed on Linux and macOS, as uvicorn's own default picks it) puts
less of each call's time into the event loop itself. `anyio.run` also tells sniffio which loop this is: under a
bare `asyncio.run` (what `uvicorn.run` does) every one of the ~30 `sniffio.current_async_library()` calls anyio
makes per tool call falls back to `asyncio.current_task()`, a `getpid` system call each on Python 3.11.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.util import find_spec
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


def run(main: Callable[..., Awaitable[T]], *args: Any) -> T:
    return anyio.run(main, *args, backend_options={"use_uvloop": find_spec("uvloop") is not None})
