"""``mcp-loadtest matrix`` (registered in :mod:`loadtest.cli.main`): one scenario on several SDKs."""

from __future__ import annotations

import dataclasses
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import click

from loadtest import __version__
from loadtest.analysis.compare.model import load_side
from loadtest.analysis.compare.verdicts import compare_sides
from loadtest.analysis.gates import any_failed, side_gates
from loadtest.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_THRESHOLD,
    no_sdk_workers,
    overrides,
    say_notes,
    style,
)
from loadtest.cli.compare import write_reports
from loadtest.core.aio import task_group
from loadtest.core.errors import UsageError, friendly
from loadtest.present.compare_terminal import render_comparison
from loadtest.present.gates import gates_terminal
from loadtest.present.progress import TerminalProgress
from loadtest.present.wire_diffs import group_differences, render_groups
from loadtest.results.document import load_run, run_dir
from loadtest.run.clients.config import CLIENT_KINDS, DEFAULT_WORKERS, ClientKind
from loadtest.run.driver import RunControl
from loadtest.run.execute import watch_signals
from loadtest.run.matrix import DEFAULT_REPEAT, check_differences, run_matrix, side_by_side, side_title
from loadtest.run.workers import MAX_WORKERS, check_workers
from loadtest.scenario import Scenario, load_scenario

__all__ = ["matrix_command"]


@click.command("matrix")
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
def matrix_command(
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
        scenario, overrides(transports, server_cmd, None, sessions, duration, requests, rate)
    )
    say_notes(loaded)
    if client_kind == "builtin" and client_specs:
        raise UsageError("--client-sdk needs --client sdk (or no --client at all)")
    kind: ClientKind = client_kind or ("sdk" if client_specs else "builtin")
    check_workers(loaded, workers)
    no_sdk_workers(kind, workers)
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
    gates = [(side.label, side_gates([load_run(path) for path in side.runs])) for side in usable]
    if usable:
        click.echo(_table(side_by_side(usable)))
        for line in gates_terminal(gates, style()):
            click.echo(line)
    # Printed once, here, grouped by cause: the comparisons below leave them out on screen
    # (their written reports keep them).
    pairs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a, b, diff in check_differences(sides):
        pairs.setdefault((a, b), []).append(diff.to_dict())
    if pairs:
        click.echo("\nwire-behaviour differences (conformance checks):")
        for (a, b), diffs in pairs.items():
            click.echo(f"  {a} -> {b}:")
            for line in render_groups(group_differences(diffs), indent="    "):
                click.echo(line)
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
            on_screen = dataclasses.replace(comparison, check_diffs=[]) if pairs else comparison
            click.echo(render_comparison(on_screen, style()))
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
    failed_gates = [label for label, side_list in gates if any_failed(side_list)]
    if failed_gates:
        click.echo(
            f"mcp-loadtest: a threshold of the scenario failed on {', '.join(failed_gates)}; see the summary",
            err=True,
        )
    return EXIT_THRESHOLD if regressed or failed_gates else EXIT_OK


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )
