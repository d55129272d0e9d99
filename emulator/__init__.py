"""The provider emulator shared by tests/ and bench/: real HTTP upstreams on loopback (see emulator/app.py).

Not shipped (pyproject packages only mcp_server*); importable from the repository root, where pytest
(pythonpath ["."]) and `python -m bench` run.
"""

from emulator.app import Emulator, Fault, RecordedRequest

__all__ = ["Emulator", "Fault", "RecordedRequest"]
