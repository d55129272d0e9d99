"""The layering holds: the core loads no `mcp` module, no modules import each other (directly or in a loop), media/
stays below the router, and bench/ and the emulator import nothing from tests/."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
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


PACKAGE = ROOT / "mcp_server"
# media/ (files, previews, fetch guard) is below the router: it may not reach up into the router, its attempt
# loop and ledger, the video job engine that calls it, or the MCP surface
MEDIA_MAY_NOT_IMPORT = ("video_jobs", "router", "reliability", "usage", "tools", "cli", "server", "gateway")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, *, deferred: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run: at module level, and with `deferred` those inside functions too; never
    the ones under `if TYPE_CHECKING:` (type-only, they never execute)."""

    def walk(nodes: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                yield node
            elif isinstance(node, ast.If) and _type_checking(node.test):
                yield from walk(node.orelse)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if deferred:
                    yield from walk(node.body)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    yield from walk(getattr(node, field, []))

    yield from walk(tree.body)


def _targets(node: ast.Import | ast.ImportFrom, module: str, modules: dict[str, Path]) -> set[str]:
    """The project modules an import statement loads: `from pkg import sub` is pkg.sub, `from pkg import name` pkg."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
        package = module if modules[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if node.module else package
    found = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        found |= {sub} if sub in modules else {base} if base in modules else set()
    return found


def import_graph(*, deferred: bool) -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = set().union(*(_targets(n, name, modules) for n in _imports(tree, deferred=deferred))) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop as a path (first module repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            if cycle := visit(target):
                return cycle
        path.pop()
        done.add(module)
        return None

    return next((cycle for module in sorted(graph) if (cycle := visit(module))), None)


def test_the_cycle_finder_finds_a_loop() -> None:
    """The check below can fail: a three-module loop is found and named in order."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


@pytest.mark.parametrize("deferred", [False, True], ids=["module-level", "with-imports-in-functions"])
def test_no_two_modules_import_each_other(deferred: bool) -> None:
    """No import loop among mcp_server's modules, whether the imports run at import time or are deferred into a
    function (the old cli.py <-> access/keys_cli.py loop was one of those)."""
    graph = import_graph(deferred=deferred)
    assert len(graph) > 50 and graph["mcp_server.gateway"], "the graph was not built"
    cycle = find_cycle(graph)
    assert cycle is None, "import loop: " + " -> ".join(cycle or [])


def test_media_stays_below_the_router() -> None:
    """Not even in a function: media/ is what the job engine and the tools use, never the other way round."""
    graph = import_graph(deferred=True)
    reaching_up = {
        f"{module}: {target}"
        for module, targets in graph.items()
        if module.startswith("mcp_server.media")
        for target in targets
        if target.split(".")[1:2] and target.split(".")[1] in MEDIA_MAY_NOT_IMPORT
    }
    assert sorted(reaching_up) == []


@pytest.mark.parametrize("directory", ["bench", "emulator"])
def test_bench_and_the_emulator_import_nothing_from_tests(directory: str) -> None:
    found = []
    for path in (ROOT / directory).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] == "tests"]
    assert found == []
