"""A long clean run: many calls, mixed ops (blobs of tens of MB included), concurrent sessions,
every transport, against the bundled reference server. It must report zero silent failures.

    .venv/bin/python bench/clean_run.py                         # 34,000 calls per transport (102,000)
    .venv/bin/python bench/clean_run.py --calls 2000 --sessions 4 --through-proxy
    .venv/bin/python bench/clean_run.py --json-out clean.json

``--through-proxy`` puts ``mcp-loadtest proxy`` with no faults between tester and server, to
show that the proxy itself loses, cuts and crosses nothing. Exit status 1 when any silent
failure or loud error was reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from loadtest.core.names import DEFAULT_PATHS
from loadtest.core.process import launch, wait_for_port
from loadtest.measure.metrics import Recorder
from loadtest.run.driver import run_scenario
from loadtest.run.targets.reference import free_port, reference_command
from loadtest.scenario import load_scenario

#: The mix: every kind of call; weights make ~0.02% of calls 24 MB blobs and ~0.8% 1 MB ones.
OPS = """
[[ops]]
name = "echo"
tool = "echo"
arguments = { text = "hello {nonce}" }
weight = 10
expect = { text = "hello {nonce}" }

[[ops]]
name = "blob-4k"
tool = "blob"
arguments = { n_bytes = 4096, seed = "{seed}" }
weight = 4
expect = { blob = true }

[[ops]]
name = "read:blob-16k"
method = "resources/read"
uri = "blob://16384/{seed}"
weight = 3
expect = { blob = true }

[[ops]]
name = "blob-1m"
tool = "blob"
arguments = { n_bytes = 1048576, seed = "{seed}" }
weight = 0.2
expect = { blob = true }

[[ops]]
name = "read:blob-24m"
method = "resources/read"
uri = "blob://25165824/{seed}"
weight = 0.005
expect = { blob = true }

[[ops]]
name = "greet"
method = "prompts/get"
prompt = "greet"
arguments = { name = "{nonce}" }
weight = 2
expect = { text = "Hello, {nonce}!" }

[[ops]]
name = "progress"
tool = "progress"
arguments = { steps = 3, nonce = "{nonce}" }
weight = 2
progress = true
expect_progress = 3
expect = { text = "progress 3 {nonce}" }

[[ops]]
method = "tools/list"
weight = 1

[[ops]]
method = "ping"
weight = 2
"""


@asynccontextmanager
async def _target(transport: str, through_proxy: bool) -> AsyncIterator[str]:
    """The scenario's [target] body: the bundled server, or the bundled server behind the proxy."""
    if not through_proxy:
        yield ""
        return
    proxy = [sys.executable, "-m", "loadtest.proxy"]
    if transport == "stdio":
        yield f"command = {json.dumps([*proxy, '--stdio', '--', *reference_command('stdio')])}"
        return
    async with AsyncExitStack() as stack:
        upstream = free_port()
        server = await stack.enter_async_context(
            launch(reference_command(transport, port=upstream), stdin=False, stdout=False)
        )
        await wait_for_port(server, "127.0.0.1", upstream, 20)
        port = free_port()
        cmd = [*proxy, "--listen", f"127.0.0.1:{port}", "--upstream", f"http://127.0.0.1:{upstream}"]
        process = await stack.enter_async_context(launch(cmd, stdin=False, stdout=False))
        await wait_for_port(process, "127.0.0.1", port, 20)
        yield f'url = "http://127.0.0.1:{port}{DEFAULT_PATHS[transport]}"'


async def clean_run(
    calls: int, sessions: int, transports: list[str], through_proxy: bool, out_dir: Path
) -> dict[str, Any]:
    """Run ``calls`` calls per transport; return the figures per transport and in total."""
    figures: dict[str, Any] = {"transports": {}}
    for transport in transports:
        async with _target(transport, through_proxy) as target:
            text = (
                f'name = "clean-run"\ntransports = ["{transport}"]\n'
                + (f"[target]\n{target}\n" if target else "")
                + f'[workload]\nsessions = {sessions}\nrequests = {calls}\nwarmup = "0s"\n'
                + OPS
            )
            path = out_dir / f"clean-{transport}.toml"
            path.write_text(text)
            recorder = Recorder(out_dir=out_dir)
            started = time.perf_counter()
            await run_scenario(load_scenario(path), recorder)
            recorder.finish()
            elapsed = time.perf_counter() - started
            result = recorder.summary()[transport]
        ops = result["ops"]
        silent: dict[str, int] = {}
        errors: dict[str, int] = {}
        for stats in ops.values():
            for kind, n in stats["silent"].items():
                silent[kind] = silent.get(kind, 0) + n
            for kind, n in stats["errors"].items():
                errors[kind] = errors.get(kind, 0) + n
        figures["transports"][transport] = {
            "calls": sum(stats["count"] for stats in ops.values()),
            "ok": sum(stats["ok"] for stats in ops.values()),
            "by_op": {name: stats["count"] for name, stats in ops.items()},
            "bytes_in": sum(stats.get("bytes_in", 0) for stats in ops.values()),
            "duration_s": round(elapsed, 1),
            "silent": silent,
            "errors": errors,
            "silent_examples": {
                name: stats.get("silent_examples") for name, stats in ops.items() if stats["silent"]
            },
        }
    per = figures["transports"].values()
    figures["calls"] = sum(t["calls"] for t in per)
    figures["silent_failures"] = sum(sum(t["silent"].values()) for t in per)
    figures["errors"] = sum(sum(t["errors"].values()) for t in per)
    figures["duration_s"] = round(sum(t["duration_s"] for t in per), 1)
    figures["through_proxy"] = through_proxy
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=34_000, help="calls per transport (default 34000)")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--transport", action="append", choices=("stdio", "sse", "http"))
    parser.add_argument("--through-proxy", action="store_true", help="via mcp-loadtest proxy, no faults")
    parser.add_argument("--json-out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clean-run-") as tmp:
        figures = anyio.run(
            clean_run,
            args.calls,
            args.sessions,
            args.transport or ["stdio", "sse", "http"],
            args.through_proxy,
            Path(tmp),
        )
    for name, t in figures["transports"].items():
        print(
            f"{name:6} {t['calls']:>8,} calls  {t['duration_s']:>7.1f} s  {t['calls'] / max(t['duration_s'], 1e-9):>7.0f}/s"
            f"  {t['bytes_in'] / 1e6:>8.1f} MB in  silent {t['silent'] or 0}  errors {t['errors'] or 0}"
        )
    print(
        f"total  {figures['calls']:>8,} calls  {figures['duration_s']:>7.1f} s  "
        f"silent_failures {figures['silent_failures']}  errors {figures['errors']}"
    )
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(figures, indent=2))
    return 0 if figures["silent_failures"] == 0 and figures["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
