"""The ``mcp-loadtest`` command line (the contract: README, "What `run` does" and the commands' sections).

Exit codes: 0 all good; 1 a threshold failed; 2 usage error; 3 the run could not be carried
out; 130 interrupted (partial results written). User mistakes print one line, never a
traceback.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import anyio
import click
import orjson

from loadtest import __version__
from loadtest.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_THRESHOLD,
    no_sdk_workers,
    overrides,
    say_notes,
    style,
)
from loadtest.core.aio import task_group
from loadtest.core.errors import LoadtestError, UsageError, friendly
from loadtest.core.names import SERVER_TRANSPORT_NAMES, TRANSPORTS, transport_name
from loadtest.present.baseline import BaselineOutcome, check_against_baseline, write_junit, write_markdown
from loadtest.present.progress import TerminalProgress
from loadtest.present.terminal import render_summary
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
from loadtest.run.targets.reference import reference_command
from loadtest.run.workers import MAX_WORKERS, check_workers
from loadtest.scenario import Scenario, load_scenario


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
    "--markdown",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="F",
    help="Write a markdown summary (thresholds, baseline verdicts) for a CI step summary.",
)
@click.option(
    "--force",
    is_flag=True,
    help="--baseline: compare with every baseline run, even those from another workload or machine.",
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
    "--protocol",
    metavar="auto|VERSION",
    help="MCP protocol version: auto (server/discover, else initialize; default) or e.g. 2025-11-25.",
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
    markdown: Path | None,
    force: bool,
    client_kind: ClientKind | None,
    client_sdk: str | None,
    client_workers: int,
    protocol: str | None,
    workers: int,
) -> None:
    """Run SCENARIO (default: the bundled smoke scenario against the bundled reference server)."""
    flags = overrides(transports, target_cmd, url, sessions, duration, requests, rate)
    if protocol is not None:
        flags["workload.protocol"] = protocol
    loaded = load_scenario(scenario, flags)
    say_notes(loaded)
    check_workers(loaded, workers)
    if baseline is not None and not baseline.is_dir():
        raise UsageError(f"--baseline {baseline}: no such directory; create it by copying a run into it")
    kind: ClientKind = client_kind or ("sdk" if client_sdk else "builtin")
    client = resolve_client(
        kind, client_sdk, workers=client_workers, log=lambda line: click.echo(f"  {line}", err=True)
    )
    no_sdk_workers(kind, workers)
    if force and baseline is None:
        raise UsageError("--force goes with --baseline (it compares with every baseline run)")
    reports = _Reports(baseline, junit, markdown, force)
    code = anyio.run(_run, loaded, out, as_json, no_progress, reports, client, workers)
    sys.exit(code)


@dataclasses.dataclass(frozen=True)
class _Reports:
    """What ``run`` compares with and writes after the run."""

    baseline: Path | None
    junit: Path | None
    markdown: Path | None
    force: bool


async def _run(
    scenario: Scenario,
    out: Path,
    as_json: bool,
    no_progress: bool,
    reports: _Reports,
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
    # A run that could not be carried out and measured nothing has no table to show: a table of
    # zeros under "pass" thresholds would read as a result. Its one error line says it all.
    measured = bool((document.get("totals") or {}).get("calls"))
    if as_json:
        sys.stdout.write(
            orjson.dumps({**document, "path": str(outcome.path)}, option=orjson.OPT_INDENT_2).decode() + "\n"
        )
    elif outcome.failure is None or measured:
        click.echo(render_summary(document, style()))
        click.echo(f"results: {outcome.path}")
    against = None
    if reports.baseline is not None and outcome.failure is None and not outcome.interrupted:
        try:
            against = check_against_baseline(
                document, outcome.path.parent, reports.baseline, force=reports.force
            )
        except LoadtestError as exc:
            # Whatever the baseline's trouble, the JUnit file and the summary still get written.
            against = BaselineOutcome(None, str(reports.baseline), note=str(exc), error=exc)
        click.echo(against.render(style()), err=as_json)
    if reports.junit is not None:
        write_junit(reports.junit, document, against)
    if reports.markdown is not None:
        write_markdown(reports.markdown, document, against)
    if outcome.interrupted:
        click.echo("mcp-loadtest: interrupted; partial results written", err=True)
        return EXIT_INTERRUPTED
    if outcome.failure is not None:
        click.echo(f"mcp-loadtest: error: {outcome.failure}", err=True)
        return outcome.failure.exit_code
    if against is not None and against.error is not None:
        click.echo(f"mcp-loadtest: error: {against.error}", err=True)
        return against.error.exit_code
    regressed = against is not None and against.regression
    if outcome.target_failures:
        click.echo(
            f"mcp-loadtest: the target crashed or hung ({outcome.target_failures}x); see the summary",
            err=True,
        )
    failed = not outcome.thresholds_passed or regressed or outcome.target_failures
    return EXIT_THRESHOLD if failed else EXIT_OK


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
from loadtest.cli.matrix import matrix_command  # noqa: E402

main.add_command(matrix_command)
from loadtest.cli.check import check_command  # noqa: E402

main.add_command(check_command)
from loadtest.proxy.cli import proxy_command  # noqa: E402

main.add_command(proxy_command)
from loadtest.cli.compare import compare_command, report_command  # noqa: E402

main.add_command(compare_command)
main.add_command(report_command)
