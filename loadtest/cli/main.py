"""The ``mcp-loadtest`` command line (DESIGN.md, "Command line (contract)").

Exit codes: 0 all good; 1 a threshold failed; 2 usage error; 3 the run could not be carried
out; 130 interrupted (partial results written). User mistakes print one line, never a
traceback.
"""

from __future__ import annotations

import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import click
import orjson

from loadtest import __version__
from loadtest.analysis.compare.model import load_side
from loadtest.analysis.compare.verdicts import compare_sides
from loadtest.cli.compare import write_reports
from loadtest.core.aio import task_group
from loadtest.core.errors import UsageError, friendly
from loadtest.core.names import SERVER_TRANSPORT_NAMES, TRANSPORTS, transport_name
from loadtest.present.baseline import check_against_baseline, write_junit
from loadtest.present.compare_terminal import render_comparison
from loadtest.present.progress import TerminalProgress
from loadtest.present.terminal import Style, render_summary
from loadtest.results.document import run_dir
from loadtest.run.clients.config import (
    CLIENT_KINDS,
    DEFAULT_WORKERS,
    ClientConfig,
    ClientKind,
    resolve_client,
)
from loadtest.run.driver import RunControl
from loadtest.run.execute import execute, watch_signals
from loadtest.run.matrix import DEFAULT_REPEAT, check_differences, run_matrix, side_by_side, side_title
from loadtest.run.targets.reference import reference_command
from loadtest.run.workers import MAX_WORKERS, check_workers
from loadtest.scenario.model import Scenario, load_scenario

EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE, EXIT_RUN_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mcp-loadtest")
def main() -> None:
    """Load and conformance tester for MCP servers over stdio, legacy SSE and Streamable HTTP."""


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option(
    "--target-cmd",
    metavar="CMD",
    help="Launch this server command ({transport}, {port}, {python} are filled in).",
)
@click.option("--url", metavar="URL", help="Use a running server at URL instead of launching one.")
@click.option(
    "--transport",
    "transports",
    multiple=True,
    type=click.Choice(["stdio", "sse", "http", "all"]),
    help="Transport(s) to run; repeat or use 'all'. Default: the scenario's.",
)
@click.option("--sessions", type=click.IntRange(min=1), help="Concurrent sessions per transport.")
@click.option("--duration", metavar="30s", help="Measured duration per transport (after warm-up).")
@click.option("--requests", type=click.IntRange(min=1), help="Stop after this many calls per transport.")
@click.option("--rate", metavar="200/s", help="Open model: target arrival rate (e.g. 200/s, 300/h).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("results"),
    show_default=True,
    help="Directory under which the run's directory is created.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--no-progress", is_flag=True, help="No live display; plain progress lines only.")
@click.option(
    "--baseline",
    type=click.Path(path_type=Path, file_okay=False),
    help="Compare with the run(s) in DIR; exit 1 on a regression.",
)
@click.option(
    "--junit",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="F",
    help="Write JUnit XML: thresholds (and baseline verdicts).",
)
@click.option(
    "--client",
    "client_kind",
    type=click.Choice(CLIENT_KINDS),
    help="Who makes the calls: the built-in wire-level client (default) or an mcp SDK's own client.",
)
@click.option(
    "--client-sdk",
    metavar="SPEC",
    help="The mcp release whose SDK client makes the calls (implies --client sdk). Default: the mcp installed with mcp-loadtest.",
)
@click.option(
    "--client-workers",
    type=click.IntRange(min=1),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="SDK client: worker processes per transport.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=MAX_WORKERS),
    default=1,
    show_default=True,
    help="Generator processes (one event loop, one core each) sharing the load.",
)
@friendly
def run(
    scenario: Path | None,
    target_cmd: str | None,
    url: str | None,
    transports: tuple[str, ...],
    sessions: int | None,
    duration: str | None,
    requests: int | None,
    rate: str | None,
    out: Path,
    as_json: bool,
    no_progress: bool,
    baseline: Path | None,
    junit: Path | None,
    client_kind: ClientKind | None,
    client_sdk: str | None,
    client_workers: int,
    workers: int,
) -> None:
    """Run SCENARIO (default: the bundled smoke scenario against the bundled reference server)."""
    overrides = _overrides(transports, target_cmd, url, sessions, duration, requests, rate)
    loaded = load_scenario(scenario, overrides)
    check_workers(loaded, workers)
    if baseline is not None and not baseline.is_dir():
        raise UsageError(f"--baseline {baseline}: no such directory; create it by copying a run into it")
    kind: ClientKind = client_kind or ("sdk" if client_sdk else "builtin")
    client = resolve_client(
        kind, client_sdk, workers=client_workers, log=lambda line: click.echo(f"  {line}", err=True)
    )
    _no_sdk_workers(kind, workers)
    code = anyio.run(_run, loaded, out, as_json, no_progress, baseline, junit, client, workers)
    sys.exit(code)


async def _run(
    scenario: Scenario,
    out: Path,
    as_json: bool,
    no_progress: bool,
    baseline: Path | None,
    junit: Path | None,
    client: ClientConfig,
    workers: int,
) -> int:
    directory = run_dir(out, scenario.name, datetime.now(timezone.utc))
    # A soak's status lines replace the plain progress lines, which would flood an hours-long log.
    plain_every_s = math.inf if scenario.soak is not None else 5.0
    progress = TerminalProgress(sys.stderr, live=False if no_progress else None, plain_every_s=plain_every_s)
    control = RunControl()
    progress.note(f"mcp-loadtest {__version__}: {scenario.name} -> {directory}")
    if client.is_sdk:
        progress.note(f"calls made by {client.describe()} ({client.python})")
    async with task_group() as tg:
        tg.start_soon(watch_signals, control)
        outcome = await execute(
            scenario, directory, progress=progress, control=control, client=client, workers=workers
        )
        tg.cancel_scope.cancel()
    document = outcome.document
    if as_json:
        sys.stdout.write(
            orjson.dumps({**document, "path": str(outcome.path)}, option=orjson.OPT_INDENT_2).decode() + "\n"
        )
    else:
        click.echo(render_summary(document, _style()))
        click.echo(f"results: {outcome.path}")
    if outcome.interrupted:
        click.echo("mcp-loadtest: interrupted; partial results written", err=True)
        return EXIT_INTERRUPTED
    if outcome.failure is not None:
        click.echo(f"mcp-loadtest: error: {outcome.failure}", err=True)
        return outcome.failure.exit_code
    against = None
    if baseline is not None:
        against = check_against_baseline(document, outcome.path.parent, baseline)
        click.echo(against.render(_style()), err=as_json)
    if junit is not None:
        write_junit(junit, document, against)
    regressed = against is not None and against.regression
    if outcome.target_failures:
        click.echo(
            f"mcp-loadtest: the target crashed or hung ({outcome.target_failures}x); see the summary",
            err=True,
        )
    failed = not outcome.thresholds_passed or regressed or outcome.target_failures
    return EXIT_THRESHOLD if failed else EXIT_OK


def _overrides(
    transports: tuple[str, ...],
    target_cmd: str | None,
    url: str | None,
    sessions: int | None,
    duration: str | None,
    requests: int | None,
    rate: str | None,
) -> dict[str, Any]:
    """Command-line flags as scenario overrides (dotted keys), for load_scenario."""
    overrides: dict[str, Any] = {}
    if transports:
        overrides["transports"] = (
            ["stdio", "sse", "http"] if "all" in transports else list(dict.fromkeys(transports))
        )
    for key, value in (
        ("target.command", target_cmd),
        ("target.url", url),
        ("workload.sessions", sessions),
        ("workload.duration", duration),
        ("workload.requests", requests),
        ("workload.rate", rate),
    ):
        if value is not None:
            overrides[key] = value
    return overrides


def _style() -> Style:
    return Style(colour=sys.stdout.isatty() and "NO_COLOR" not in os.environ)


@main.command()
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option(
    "--sdk",
    "specs",
    multiple=True,
    required=True,
    metavar="SPEC",
    help="An mcp version (1.23.1), requirement (mcp==1.23.1), git URL or local path. Repeat.",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=DEFAULT_REPEAT,
    show_default=True,
    help="Runs per SDK, interleaved A B B A ...",
)
@click.option(
    "--python", metavar="PY", help="Interpreter for the environments (path, command or version such as 3.12)."
)
@click.option(
    "--server-cmd",
    metavar="CMD",
    help="Your server instead of the reference one: '{python} -m myserver --transport {transport} --port {port}'.",
)
@click.option(
    "--install",
    multiple=True,
    metavar="PATH_OR_REQ",
    help="Also install this into every environment (your server's code and needs). Repeat.",
)
@click.option(
    "--transport",
    "transports",
    multiple=True,
    type=click.Choice(["stdio", "sse", "http", "all"]),
    help="Transport(s) to run; repeat or use 'all'.",
)
@click.option("--sessions", type=click.IntRange(min=1), help="Concurrent sessions per transport.")
@click.option("--duration", metavar="30s", help="Measured duration per transport and run.")
@click.option(
    "--requests", type=click.IntRange(min=1), help="Stop each run after this many calls per transport."
)
@click.option("--rate", metavar="200/s", help="Open model: target arrival rate.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("results"),
    show_default=True,
    help="Directory under which the matrix directory is created.",
)
@click.option("--no-check", is_flag=True, help="Skip the conformance checks of each SDK's server.")
@click.option("--no-progress", is_flag=True, help="No live display; plain progress lines only.")
@click.option(
    "--client",
    "client_kind",
    type=click.Choice(CLIENT_KINDS),
    help="Who makes the calls: the built-in client (default), or with 'sdk' each SDK's own client.",
)
@click.option(
    "--client-sdk",
    "client_specs",
    multiple=True,
    metavar="SPEC",
    help="SDK client release(s) to make the calls, crossed with every --sdk server (implies --client sdk). Repeat.",
)
@click.option(
    "--client-workers",
    type=click.IntRange(min=1),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="SDK client: worker processes per transport.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=MAX_WORKERS),
    default=1,
    show_default=True,
    help="Generator processes (one event loop, one core each) sharing the load.",
)
@friendly
def matrix(
    scenario: Path | None,
    specs: tuple[str, ...],
    repeat: int,
    python: str | None,
    server_cmd: str | None,
    install: tuple[str, ...],
    transports: tuple[str, ...],
    sessions: int | None,
    duration: str | None,
    requests: int | None,
    rate: str | None,
    out: Path,
    no_check: bool,
    no_progress: bool,
    client_kind: ClientKind | None,
    client_specs: tuple[str, ...],
    client_workers: int,
    workers: int,
) -> None:
    """Benchmark SCENARIO on each SDK version, each in its own cached environment."""
    loaded = load_scenario(
        scenario, _overrides(transports, server_cmd, None, sessions, duration, requests, rate)
    )
    if client_kind == "builtin" and client_specs:
        raise UsageError("--client-sdk needs --client sdk (or no --client at all)")
    kind: ClientKind = client_kind or ("sdk" if client_specs else "builtin")
    check_workers(loaded, workers)
    _no_sdk_workers(kind, workers)
    clients = (kind, client_specs, client_workers)
    sys.exit(
        anyio.run(
            _matrix, loaded, specs, repeat, python, install, out, not no_check, no_progress, clients, workers
        )
    )


async def _matrix(
    scenario: Scenario,
    specs: tuple[str, ...],
    repeat: int,
    python: str | None,
    install: tuple[str, ...],
    out: Path,
    check: bool,
    no_progress: bool,
    clients: tuple[ClientKind, tuple[str, ...], int],
    workers: int,
) -> int:
    directory = run_dir(out, f"matrix-{scenario.name}", datetime.now(timezone.utc))
    progress = TerminalProgress(sys.stderr, live=False if no_progress else None)
    control = RunControl()
    client_kind, client_specs, client_workers = clients
    count = len(specs) * max(1, len(client_specs))
    what = (
        f"{len(specs)} SDK specs"
        if not client_specs
        else f"{len(specs)} server x {len(client_specs)} client SDK specs"
    )
    progress.note(f"mcp-loadtest {__version__}: matrix of {what} x {repeat} runs -> {directory}")
    if client_kind == "sdk":
        progress.note(
            "calls made by each SDK's own client"
            if not client_specs
            else "calls made by the SDK clients " + ", ".join(client_specs)
        )
    async with task_group() as tg:
        tg.start_soon(watch_signals, control)
        sides = await run_matrix(
            scenario,
            specs,
            directory,
            repeat=repeat,
            python=python,
            install=install,
            check=check,
            say=progress.note,
            progress=progress,
            control=control,
            client=client_kind,
            client_specs=client_specs,
            client_workers=client_workers,
            workers=workers,
        )
        tg.cancel_scope.cancel()
    usable = [side for side in sides if side.usable]
    if usable:
        click.echo(_table(side_by_side(usable)))
    differences = check_differences(sides)
    if differences:
        click.echo("\nwire-behaviour differences (conformance checks):")
        for a, b, diff in differences:
            click.echo(f"  {a} -> {b}: {diff}")
    regressed = False
    if len(usable) >= 2 and not control.was_interrupted:
        # The first SDK is the reference ("before"); every other one is compared with it.
        before = load_side(
            [directory / usable[0].label], label=f"{usable[0].label} ({side_title(usable[0])})"
        )
        for side in usable[1:]:
            after = load_side([directory / side.label], label=f"{side.label} ({side_title(side)})")
            comparison = compare_sides(before, after)
            click.echo("")
            click.echo(render_comparison(comparison, _style()))
            # Not Path.with_suffix: labels such as "mcp-1.23.1" have dots of their own.
            stem = f"compare-{usable[0].label}-vs-{side.label}"
            reports = {ext: directory / f"{stem}.{ext}" for ext in ("md", "html", "json")}
            for path in write_reports(
                comparison, markdown=reports["md"], html=reports["html"], json_path=reports["json"]
            ):
                click.echo(f"wrote {path}")
            regressed = regressed or comparison.regressed
    for side in sides:
        if not side.usable:
            click.echo(f"{side_title(side)}: no results ({side.error or 'every run failed'})", err=True)
    click.echo(f"matrix: {directory}")
    if control.was_interrupted:
        click.echo("mcp-loadtest: interrupted; partial results written", err=True)
        return EXIT_INTERRUPTED
    if count > 1 and len(usable) < 2:
        click.echo(
            "mcp-loadtest: error: fewer than two SDK specs produced results; nothing to compare", err=True
        )
        return EXIT_RUN_FAILED
    return EXIT_THRESHOLD if regressed else EXIT_OK


def _no_sdk_workers(kind: str, workers: int) -> None:
    if kind == "sdk" and workers > 1:
        raise UsageError(
            "--workers splits the built-in client over processes; the SDK client has --client-workers"
        )


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


@main.command("reference-server", context_settings={"ignore_unknown_options": True})
@click.option(
    "--transport",
    type=click.Choice([*TRANSPORTS, SERVER_TRANSPORT_NAMES["http"]]),
    default="stdio",
    show_default=True,
)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--json-response", is_flag=True, help="Streamable HTTP answers application/json instead of SSE."
)
@click.option("--stateless", is_flag=True, help="Stateless Streamable HTTP.")
@click.option("--delay-ms", type=float, default=0.0, help="Added server-side delay per request.")
@click.option(
    "--leak-kb-per-session",
    type=click.IntRange(min=0),
    default=0,
    help="sse/http: keep this many KiB per session, forever (a deliberate leak).",
)
def reference_server(
    transport: str, port: int, json_response: bool, stateless: bool, delay_ms: float, leak_kb_per_session: int
) -> None:
    """Start the bundled reference server with the installed `mcp` (listens on 127.0.0.1)."""
    name = transport_name(transport) or transport
    argv = reference_command(
        name,
        port=None if name == "stdio" else port,
        json_response=json_response,
        stateless=stateless,
        delay_ms=delay_ms,
        leak_kb_per_session=leak_kb_per_session,
    )
    os.execv(argv[0], argv)


# -- commands that live in their own modules ------------------------------------------------
# Each module defines one click command; it is registered here (one line each) so that the
# modules never import this one.
from loadtest.cli.check import check_command  # noqa: E402

main.add_command(check_command)
from loadtest.proxy.cli import proxy_command  # noqa: E402

main.add_command(proxy_command)
from loadtest.cli.compare import compare_command, report_command  # noqa: E402

main.add_command(compare_command)
main.add_command(report_command)
