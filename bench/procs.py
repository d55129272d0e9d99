"""The processes a bench run starts: the provider emulator, the bare forwarder and genroute (stdio or HTTP).

Every process is started with a bounded wait for readiness and stopped (terminate, then kill) on exit.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
from mcp import StdioServerParameters

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "BENCH_UPSTREAM_KEY"
KEY = "bench-key"
MODEL = "gpt-5.5"
IMAGE_MODEL = "gpt-image-2"
VIDEO_MODEL = "kling-v2-master"


def child_env(**extra: str) -> dict[str, str]:
    """What an MCP client passes a server it launches: a few basics plus the provider key."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env[KEY_ENV] = KEY
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@dataclass
class Proc:
    """A started child process and the URL it printed or answers on."""

    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    @property
    def pid(self) -> int:
        return self.process.pid


def _read_ready(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    """The URL from the child's `READY <url>` line on stdout, within `timeout_s`."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    buffer = b""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before it was ready")
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if not ready:
            continue
        chunk = os.read(process.stdout.fileno(), 4096)
        buffer += chunk
        for line in buffer.decode(errors="replace").splitlines():
            if line.startswith("READY "):
                return line.split(" ", 1)[1].strip()
    process.kill()
    raise RuntimeError(f"{process.args!r} did not print READY within {timeout_s} s")


def _spawn_ready(args: list[str], env: dict[str, str], timeout_s: float = 30.0) -> Proc:
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        url = _read_ready(process, timeout_s)
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    return Proc(process, url)


@contextlib.contextmanager
def emulator(latency_ms: float) -> Iterator[Proc]:
    """`python -m emulator` with a fixed upstream latency; `.url` is its base URL (OpenAI API at /v1)."""
    args = [sys.executable, "-m", "emulator", "--port", "0", "--latency-ms", str(latency_ms)]
    args += ["--api-key", KEY, "--max-recorded", "100"]
    proc = _spawn_ready(args, child_env())
    try:
        yield proc
    finally:
        proc.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(directory: Path, upstream_base: str, **provider_extra: object) -> Path:
    """A genroute config with one OpenAI-compatible provider (the emulator) and one chat model."""
    extra = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in provider_extra.items())
    text = f"""
[server]
data_dir = "{directory / "data"}"
output_dir = "{directory / "media"}"
local_model = false

[providers.emu]
protocol = "openai"
base_url = "{upstream_base}/v1"
api_key_env = "{KEY_ENV}"
timeout_s = 120
{extra}
[models."{MODEL}"]
provider = "emu"
kind = "chat"
context_window = 400000
input_usd_per_mtok = 1.25
output_usd_per_mtok = 10.0

[models."gpt-image-2"]
provider = "emu"
kind = "image"
usd_per_image = 0.04
sizes = ["1024x1024", "2048x2048", "4096x4096"]
response_format = "b64_json"

[models."kling-v2-master"]
provider = "emu"
kind = "video"
usd_per_second = 0.1
durations = [5, 10]
"""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "genroute.toml"
    path.write_text(text, encoding="utf-8")
    return path


TEAM_DATABASE_ENV = "GENROUTE_TEST_DATABASE_URL"  # what `eval "$(bash .ci/postgres.sh)"` exports
TEAM_KEY_NAME = "bench-team"
# The team key's own limits: reserved and checked on every call, never reached by a bench run.
TEAM_KEY_LIMITS = ("--monthly-usd", "100000", "--max-usd-per-call", "10", "--rate-limit", "100000000")


@contextlib.contextmanager
def team_database() -> Iterator[str]:
    """A PostgreSQL URL whose tables live in a new schema (dropped at the end) on $GENROUTE_TEST_DATABASE_URL."""
    import psycopg

    base = os.environ.get(TEAM_DATABASE_ENV)
    if not base:
        raise RuntimeError(
            f'the team configuration needs PostgreSQL: run eval "$(bash .ci/postgres.sh)" ({TEAM_DATABASE_ENV})'
        )
    schema = f"genroute_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def write_team_config(directory: Path, upstream_base: str, database_url: str) -> Path:
    """The team configuration: write_config's, on PostgreSQL, with a global budget and /metrics for admin keys."""
    path = write_config(directory, upstream_base)
    text = path.read_text(encoding="utf-8").replace("[server]\n", f'[server]\ndatabase_url = "{database_url}"\n', 1)
    path.write_text(text + "\n[budget]\nmonthly_usd = 100000\n\n[metrics]\npublic = false\n", encoding="utf-8")
    return path


def create_team_key(config: Path) -> str:
    """`genroute keys create` with the team key's own budget and rate limit; the key (`gr_...`)."""
    args = [sys.executable, "-m", "mcp_server", "--config", str(config), "keys", "create", TEAM_KEY_NAME]
    done = subprocess.run(
        [*args, *TEAM_KEY_LIMITS], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"genroute keys create failed: {done.stderr.strip()[:300]}")
    return done.stdout.strip().splitlines()[0]


def genroute_args(config: Path, *serve_args: str) -> list[str]:
    return [sys.executable, "-m", "mcp_server", "--config", str(config), "serve", *serve_args]


def bare_args(upstream_base: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.bare_server", "--upstream", f"{upstream_base}/v1", "--model", MODEL, *extra]


def stdio_params(args: list[str]) -> StdioServerParameters:
    return StdioServerParameters(command=args[0], args=args[1:], env=child_env(), cwd=str(ROOT))


@contextlib.contextmanager
def bare_http(upstream_base: str, *extra: str) -> Iterator[Proc]:
    proc = _spawn_ready(bare_args(upstream_base, "--http", "--port", "0", *extra), child_env())
    try:
        yield proc
    finally:
        proc.stop()


@contextlib.contextmanager
def bare_image_http(upstream_base: str, out: Path) -> Iterator[Proc]:
    """bench/bare_image_server.py over HTTP: generates upstream, saves into `out`, returns the image inline."""
    args = [sys.executable, "-m", "bench.bare_image_server", "--upstream", f"{upstream_base}/v1"]
    args += ["--model", IMAGE_MODEL, "--out", str(out), "--http", "--port", "0"]
    proc = _spawn_ready(args, child_env())
    try:
        yield proc
    finally:
        proc.stop()


def start_all(stack: contextlib.ExitStack, managers: list[contextlib.AbstractContextManager[Proc]]) -> list[Proc]:
    """Enter the managers in parallel (readiness is mostly waiting); each started one is stopped with `stack`."""
    with concurrent.futures.ThreadPoolExecutor(len(managers)) as pool:
        futures = [pool.submit(manager.__enter__) for manager in managers]
        concurrent.futures.wait(futures)
    for manager, future in zip(managers, futures, strict=True):
        if future.exception() is None:
            stack.push(manager.__exit__)
    return [future.result() for future in futures]  # raises the first failure


@contextlib.contextmanager
def genroute_http(
    config: Path, timeout_s: float = 30.0, *, keys: bool = False, env: dict[str, str] | None = None
) -> Iterator[Proc]:
    """`genroute serve --http` on a free loopback port, ready once /healthz answers (`keys`: with bearer keys)."""
    port = free_port()
    args = genroute_args(config, "--http", "--port", str(port), *([] if keys else _no_auth_flag()))
    process = subprocess.Popen(
        args, cwd=ROOT, env=env or child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    proc = Proc(process, f"http://127.0.0.1:{port}/mcp")
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"genroute serve --http exited with {process.returncode}")
            with contextlib.suppress(httpx2.TransportError):
                # plain HTTP on loopback: verify=False spares building a TLS context (~40 ms of CPU) per poll
                if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1, verify=False).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"genroute serve --http did not answer /healthz within {timeout_s} s")
            time.sleep(0.05)
        yield proc
    finally:
        proc.stop()


@functools.cache
def _no_auth_flag() -> list[str]:
    """`--no-auth` once genroute's HTTP auth exists (loopback only), nothing before that."""
    try:
        out = subprocess.run(
            [sys.executable, "-m", "mcp_server", "serve", "--help"],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            timeout=30,
            check=False,
        ).stdout
    except subprocess.TimeoutExpired:
        return []
    return ["--no-auth"] if b"--no-auth" in out else []


class Fleet:
    """One emulator at a fixed latency, with the bare forwarder (on the SDK's asyncio loop, and on uvloop as
    genroute runs) and genroute serving HTTP in front of it.

    Servers start in parallel (readiness is mostly waiting); everything stops when the fleet closes.
    """

    def __init__(self, latency_ms: float, workdir: Path, *, team: bool = False, **provider_extra: object) -> None:
        self.latency_ms = latency_ms
        self.team = team  # the team configuration: PostgreSQL, bearer keys with limits, a budget, /metrics
        self.headers: dict[str, str] = {}  # what a client of genroute's HTTP sends on every request
        self.workdir = workdir
        self.provider_extra = provider_extra
        self._stack = contextlib.ExitStack()
        self.emulator: Proc
        self.bare: Proc
        self.bare_uvloop: Proc
        self.genroute: Proc
        self.config: Path

    @property
    def upstream(self) -> str:
        return self.emulator.url

    def __enter__(self) -> Fleet:
        try:
            self.emulator = self._stack.enter_context(emulator(self.latency_ms))
            if self.team:
                database_url = self._stack.enter_context(team_database())
                self.config = write_team_config(self.workdir, self.upstream, database_url)
                self.headers = {"authorization": f"Bearer {create_team_key(self.config)}"}
            else:
                self.config = write_config(self.workdir, self.upstream, **self.provider_extra)
            genroute = genroute_http(self.config, keys=self.team)
            managers = [bare_http(self.upstream), bare_http(self.upstream, "--uvloop"), genroute]
            self.bare, self.bare_uvloop, self.genroute = start_all(self._stack, managers)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()
