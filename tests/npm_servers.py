"""MCP servers from npm, for interoperability tests: the TypeScript ``server-everything``.

:func:`everything_server_bin` installs a pinned version of
``@modelcontextprotocol/server-everything`` once into a cache directory and returns the argv
that starts it; :func:`everything_command` appends the transport argument the server wants.

The install lives under ``$MCP_LOADTEST_NPM_CACHE/<version>`` (default
``~/.cache/mcp-loadtest/npm/<version>``). It is built in a temporary sibling directory and
renamed into place once complete, under an exclusive file lock, so parallel test runs neither
clash nor ever see half an install.

Without ``node``/``npm``, or when the install fails, tests skip; with
``MCP_LOADTEST_REQUIRE_NPM=1`` (CI) they fail instead, so that a missing server cannot turn
into a silently green run.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

EVERYTHING_PACKAGE = "@modelcontextprotocol/server-everything"
#: Pinned exactly: the tests assert on its tools' exact answers.
EVERYTHING_VERSION = "2026.8.31"
INSTALL_TIMEOUT_S = 300.0
#: Its SDK (@modelcontextprotocol/sdk 1.x) and express 5 need Node 18 or newer.
MIN_NODE_MAJOR = 18
#: Our transport names -> the server's first argument (``node dist/index.js [stdio|sse|streamableHttp]``).
EVERYTHING_TRANSPORT = {"stdio": "stdio", "sse": "sse", "http": "streamableHttp"}

#: The server calls ``app.listen(PORT)`` with no host, i.e. it binds every interface. This
#: preload makes any ``listen(port[, callback])`` without a host bind 127.0.0.1 instead, so the
#: test server is reachable from this machine only. A ``data:`` URL, so it needs no file; written
#: without spaces or double quotes so that it also works inside ``NODE_OPTIONS`` (as
#: scenarios/everything.toml uses it).
LOOPBACK_IMPORT = (
    "--import=data:text/javascript,"
    "const{Server}=await(import('node:net'));"
    "const{listen}=Server.prototype;"
    "Server.prototype.listen=function(...a){"
    "if(/^[0-9]+$/.test(String(a[0]))&&(a.length<2||typeof(a[1])=='function'))a.splice(1,0,'127.0.0.1');"
    "return(listen.apply(this,a))}"
)

_REQUIRE_ENV = "MCP_LOADTEST_REQUIRE_NPM"
_CACHE_ENV = "MCP_LOADTEST_NPM_CACHE"
_COMPLETE = ".mcp-loadtest-complete"


class NpmServerUnavailable(RuntimeError):
    """The npm server cannot be installed or started here."""


def npm_cache_dir(version: str = EVERYTHING_VERSION) -> Path:
    root = os.environ.get(_CACHE_ENV) or Path.home() / ".cache" / "mcp-loadtest" / "npm"
    return Path(root).expanduser() / version


def _entry_point(prefix: Path) -> Path:
    """The file the package's ``bin`` entry names, inside an install at ``prefix``."""
    package_dir = prefix / "node_modules" / EVERYTHING_PACKAGE
    try:
        manifest = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NpmServerUnavailable(f"cannot read {package_dir}/package.json: {exc}") from exc
    bin_entry = manifest.get("bin")
    if isinstance(bin_entry, dict):
        bin_entry = bin_entry.get("mcp-server-everything") or next(iter(bin_entry.values()))
    if not isinstance(bin_entry, str):
        raise NpmServerUnavailable(f"{package_dir}/package.json has no usable bin entry: {bin_entry!r}")
    if manifest.get("version") != EVERYTHING_VERSION:
        raise NpmServerUnavailable(
            f"{package_dir} holds version {manifest.get('version')!r}, expected {EVERYTHING_VERSION}"
        )
    return package_dir / bin_entry


def _node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if p is None)
        raise NpmServerUnavailable(f"{missing} not found on PATH")
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
        major = int(version.lstrip("v").split(".")[0])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise NpmServerUnavailable(f"cannot tell the version of {node}: {exc}") from exc
    if major < MIN_NODE_MAJOR:
        raise NpmServerUnavailable(
            f"{EVERYTHING_PACKAGE} needs Node >= {MIN_NODE_MAJOR}; {node} is {version}"
        )
    return node


def _install(final: Path) -> None:
    """Install the pinned package so that ``final`` appears complete, or not at all."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent / f".{final.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if (final / _COMPLETE).exists():
            return  # another process installed it while we waited
        if final.exists():
            shutil.rmtree(final)  # left behind by something other than us; start afresh
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            spec = f"{EVERYTHING_PACKAGE}@{EVERYTHING_VERSION}"
            argv = ["npm", "install", "--prefix", str(tmp), "--no-audit", "--no-fund", spec]
            try:
                done = subprocess.run(
                    argv,
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    timeout=INSTALL_TIMEOUT_S,
                    env={**os.environ, "npm_config_update_notifier": "false"},
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise NpmServerUnavailable(
                    f"`{' '.join(argv)}` did not finish within {INSTALL_TIMEOUT_S:g}s"
                ) from None
            except OSError as exc:
                raise NpmServerUnavailable(f"cannot run npm: {exc}") from exc
            if done.returncode != 0:
                tail = "\n    ".join((done.stderr or done.stdout).strip().splitlines()[-15:])
                raise NpmServerUnavailable(f"`{' '.join(argv)}` failed ({done.returncode}):\n    {tail}")
            _entry_point(tmp)  # checks the version and the bin entry
            (tmp / _COMPLETE).write_text(spec + "\n", encoding="utf-8")
            tmp.chmod(0o755)  # mkdtemp made it private; the install is an ordinary cache
            tmp.rename(final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _everything_argv() -> tuple[str, ...]:
    node = _node()
    final = npm_cache_dir()
    if not (final / _COMPLETE).exists():
        _install(final)
    entry = _entry_point(final)
    if not entry.is_file():
        raise NpmServerUnavailable(f"{entry} is missing from the install in {final}")
    return (node, LOOPBACK_IMPORT, str(entry))


@functools.cache
def _resolve() -> tuple[tuple[str, ...] | None, str]:
    """(argv, "") or (None, why not); cached, failure included, so a failed install is tried once."""
    try:
        return _everything_argv(), ""
    except NpmServerUnavailable as exc:
        return None, str(exc)


def everything_server_bin() -> list[str] | None:
    """The argv that starts server-everything (add a transport argument), or None if unavailable.

    Installs the pinned version on first use. With ``MCP_LOADTEST_REQUIRE_NPM=1`` an unavailable
    server raises :class:`NpmServerUnavailable` instead of returning None.
    """
    argv, reason = _resolve()
    if argv is not None:
        return list(argv)
    if os.environ.get(_REQUIRE_ENV) == "1":
        raise NpmServerUnavailable(
            f"{EVERYTHING_PACKAGE}@{EVERYTHING_VERSION} is required ({_REQUIRE_ENV}=1) but unavailable: {reason}"
        )
    return None


def everything_command(argv: list[str], transport: str) -> list[str]:
    """``argv`` from :func:`everything_server_bin` with the server's name for ``transport`` added."""
    return [*argv, EVERYTHING_TRANSPORT[transport]]


def require_everything() -> list[str]:
    """Like :func:`everything_server_bin`, but skips the calling test when the server is unavailable."""
    argv = everything_server_bin()
    if argv is None:
        pytest.skip(f"{EVERYTHING_PACKAGE}@{EVERYTHING_VERSION} unavailable: {_resolve()[1]}")
    return argv
