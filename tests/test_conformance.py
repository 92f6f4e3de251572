"""``check`` beyond the reference server on the installed ``mcp``: the TypeScript
server-everything (npm), two real ``mcp`` releases diffed, and the official conformance suite
(``@modelcontextprotocol/conformance``) on the checks both tools share.

The official suite 0.1.16 needs Node >= 22 (it imports ``fs.globSync``); where the node on
PATH is older, the Node 22 binary is installed from the npm registry package ``node-<os>-<arch>``
next to the suite, in the same cache as tests/npm_servers.py uses.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import pytest

from loadtest.conformance import CheckResult, diff_checks
from loadtest.envs import ensure_env
from loadtest.run.conformance import check_target
from loadtest.run.targets.reference import free_port, reference_command, start_target
from tests.npm_servers import _REQUIRE_ENV, everything_command, npm_cache_dir, require_everything

OFFICIAL_PACKAGE = "@modelcontextprotocol/conformance"
OFFICIAL_VERSION = "0.1.16"
#: The official suite's server scenarios whose checks overlap ours.
OFFICIAL_SCENARIOS = (
    "server-initialize",
    "ping",
    "dns-rebinding-protection",
    "server-sse-polling",
    "server-sse-multiple-streams",
)
#: Their check id -> ours, for the checks both tools make.
SHARED = {
    "server-initialize": "http-initialize",
    "ping": "http-ping",
    "localhost-host-rebinding-rejected": "http-dns-rebinding-rejected",
    "localhost-host-valid-accepted": "http-localhost-accepted",
    "server-sse-priming-event": "http-sse-priming-event",
    "server-accepts-multiple-post-streams": "http-concurrent-posts",
}
OLD_SDK = "1.8.0"


def _by_id(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.id: r for r in results}


# --- server-everything (TypeScript SDK) -------------------------------------------------------


@pytest.mark.npm
@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["stdio", pytest.param("sse", marks=pytest.mark.slow), "http"])
async def test_check_server_everything(transport: str) -> None:
    argv = require_everything()
    port = None if transport == "stdio" else free_port()
    env = {"PORT": str(port)} if port is not None else {}
    checks = _by_id(
        await check_target(
            transport, command=everything_command(argv, transport), env=env, port=port, ready_timeout=60
        )
    )
    assert checks[f"{transport}-initialize"].status == "SUCCESS"
    assert checks[f"{transport}-negotiate-2025-11-25"].observed == "asked 2025-11-25 -> 2025-11-25"
    if transport == "stdio":
        assert checks["stdio-stdout-only-mcp"].status == "SUCCESS"
        assert checks["stdio-exit-on-stdin-close"].status == "SUCCESS"
    elif transport == "sse":
        # The TypeScript SDK's endpoint, and it opens streams for any Origin.
        assert checks["sse-endpoint-event-first"].observed == "first event: endpoint /message?sessionId=<id>"
        assert checks["sse-origin-validation"].observed == "Origin evil.example.com -> 200"
    else:
        # Where the TypeScript server differs from the Python one: priming events, batches,
        # 400 (not 404) for an unknown or terminated session, no Host/Origin validation.
        assert checks["http-sse-priming-event"].observed == "first SSE event: priming (id, empty data)"
        assert checks["http-batch-2025-03-26"].observed == "batch of 2 -> 200 text/event-stream, 2 answered"
        assert checks["http-unknown-session-id-404"].observed == "unknown session id -> 400 application/json"
        assert checks["http-origin-validation"].observed == "Origin evil.example.com -> 200 text/event-stream"
        assert checks["http-server-survives"].status == "SUCCESS"


# --- two real mcp releases ----------------------------------------------------------------------


async def _reference_checks(transport: str, python: str) -> list[CheckResult]:
    def launch() -> tuple[list[str], dict[str, str], int | None]:
        port = None if transport == "stdio" else free_port()
        return reference_command(transport, python=python, port=port), {}, port

    command, env, port = launch()
    return await check_target(transport, command=command, env=env, port=port, relaunch=launch)


@pytest.mark.timeout(900)  # building the 1.8.0 environment the first time downloads packages
@pytest.mark.anyio
async def test_two_mcp_releases_differ_in_observed_behaviour() -> None:
    old_env = await anyio.to_thread.run_sync(ensure_env, OLD_SDK)
    old = await _reference_checks("http", str(old_env.python))
    new = await _reference_checks("http", sys.executable)
    diffs = {d.id: d for d in diff_checks(old, new)}
    lines = "\n".join(str(d) for d in diffs.values())
    # mcp 1.8 mounts the endpoint at /mcp/ and redirects, answers 2024-11-05 whatever it is
    # asked, and its session manager dies on an unknown method (restarted for the later checks).
    assert (
        str(diffs["http-endpoint-path"])
        == "http-endpoint-path: POST /mcp -> 307 /mcp/ => POST /mcp -> no redirect [INFO -> SUCCESS]"
    ), lines
    assert diffs["http-negotiate-future"].observed_a == "asked 2099-01-01 -> 2024-11-05", lines
    assert diffs["http-negotiate-future"].observed_b == "asked 2099-01-01 -> 2025-11-25", lines
    assert (
        diffs["http-server-survives"].observed_a == "server stopped answering after http-error-unknown-method"
    ), lines
    assert diffs["http-origin-validation"].observed_a == "Origin evil.example.com -> 200 text/event-stream", (
        lines
    )
    assert diffs["http-origin-validation"].observed_b == "Origin evil.example.com -> 403", lines
    assert "http-session-id-visible-ascii" not in diffs  # the same in both


# --- the official conformance suite ------------------------------------------------------------


def _node_major(node: str) -> int:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    return int(out.strip().lstrip("v").split(".")[0])


def _install_official() -> tuple[str, Path]:
    """(node >= 22, the suite's entry point), installed once under the npm test cache."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("node or npm not found on PATH")
    final = npm_cache_dir(f"conformance-{OFFICIAL_VERSION}")
    marker = final / ".complete"
    final.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent / f".{final.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            shutil.rmtree(final, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
            try:
                packages = [f"{OFFICIAL_PACKAGE}@{OFFICIAL_VERSION}"]
                if _node_major(node) < 22:
                    arch = {"x86_64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
                        platform.machine(), platform.machine()
                    )
                    packages.append(f"node-{sys.platform}-{arch}@22")
                done = subprocess.run(
                    [npm, "install", "--prefix", str(tmp), "--no-audit", "--no-fund", *packages],
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                    env={**os.environ, "npm_config_update_notifier": "false"},
                )
                if done.returncode != 0:
                    raise RuntimeError(
                        f"npm install {' '.join(packages)} failed: {done.stderr.strip()[-500:]}"
                    )
                (tmp / ".complete").write_text("ok\n")
                tmp.chmod(0o755)
                tmp.rename(final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    bundled = next((final / "node_modules").glob("node-*/bin/node"), None)
    entry = final / "node_modules" / OFFICIAL_PACKAGE / "dist" / "index.js"
    return (str(bundled) if bundled else node), entry


@pytest.fixture(scope="module")
def official_suite() -> tuple[str, Path]:
    try:
        return _install_official()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        if os.environ.get(_REQUIRE_ENV) == "1":
            raise
        pytest.skip(f"{OFFICIAL_PACKAGE}@{OFFICIAL_VERSION} unavailable: {exc}")


@pytest.mark.npm
@pytest.mark.anyio
async def test_official_suite_agrees_on_shared_checks(
    official_suite: tuple[str, Path], tmp_path: Path
) -> None:
    node, entry = official_suite
    port = free_port()
    async with start_target(
        "http", command=reference_command("http", port=port), url=None, port=port
    ) as endpoint:
        assert endpoint.url is not None
        theirs: dict[str, dict[str, object]] = {}
        for scenario in OFFICIAL_SCENARIOS:
            out = tmp_path / scenario
            # Exit status is theirs to decide (a WARNING makes it 1); the checks are what we compare.
            await anyio.run_process(
                [node, str(entry), "server", "--url", endpoint.url, "--scenario", scenario, "-o", str(out)],
                check=False,
            )
            (checks_file,) = out.glob("*/checks.json")
            for item in json.loads(checks_file.read_text()):
                theirs.setdefault(item["id"], item)
        ours = _by_id(await check_target("http", url=endpoint.url))
    compared = {
        their_id: (theirs[their_id]["status"], ours[our_id].status) for their_id, our_id in SHARED.items()
    }
    assert all(a == b for a, b in compared.values()), compared
    # Both see a Python server that sends no priming event: a WARNING for both tools.
    assert compared["server-sse-priming-event"] == ("WARNING", "WARNING")
