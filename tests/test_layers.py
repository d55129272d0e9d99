"""The layers below the tool layer know nothing of MCP: importing them loads no `mcp` module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", ["mcp_server.router", "mcp_server.usage.accountant", "mcp_server.video_jobs.engine"])
def test_the_core_imports_no_mcp_module(module: str) -> None:
    """The router, the ledger and the job engine know nothing of MCP: the tool layer passes the caller down."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
