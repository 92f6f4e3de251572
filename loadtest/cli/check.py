"""``mcp-loadtest check``: conformance checks per transport (registered in loadtest/cli/main.py).

Exit codes: 0 no check failed; 1 a check failed; 2 usage error; 3 the target could not be
started or reached. This module never imports ``loadtest.cli.main`` (that one imports this).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import click
import orjson

from loadtest import __version__
from loadtest.conformance.model import CheckResult
from loadtest.conformance.report import render_checks
from loadtest.core.errors import friendly
from loadtest.results.document import build_run, environment, run_dir, write_run
from loadtest.run.conformance import run_checks
from loadtest.run.targets.reference import REFERENCE_SERVER
from loadtest.scenario import Scenario, load_scenario

CHECKS_FILE = "checks.json"


@click.command("check")
@click.argument("scenario", required=False, type=click.Path(path_type=Path))
@click.option(
    "--target-cmd",
    metavar="CMD",
    help="Launch this server command ({transport}, {port}, {python} are filled in).",
)
@click.option("--url", metavar="URL", help="Check a running server at URL instead of launching one.")
@click.option(
    "--transport",
    "transports",
    multiple=True,
    type=click.Choice(["stdio", "sse", "http", "all"]),
    help="Transport(s) to check; repeat or use 'all'. Default: the scenario's.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("results"),
    show_default=True,
    help="Directory under which the results directory is created.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the checks as JSON (the official suite's checks.json vocabulary).",
)
@friendly
def check_command(
    scenario: Path | None,
    target_cmd: str | None,
    url: str | None,
    transports: tuple[str, ...],
    out: Path,
    as_json: bool,
) -> None:
    """Check the target's transports against the MCP specification (default: the reference server)."""
    overrides: dict[str, Any] = {}
    if transports:
        overrides["transports"] = (
            ["stdio", "sse", "http"] if "all" in transports else list(dict.fromkeys(transports))
        )
    for key, value in (("target.command", target_cmd), ("target.url", url)):
        if value is not None:
            overrides[key] = value
    loaded = load_scenario(scenario, overrides)
    sys.exit(anyio.run(_check, loaded, out, as_json))


async def _check(scenario: Scenario, out: Path, as_json: bool) -> int:
    started = datetime.now(timezone.utc)
    directory = run_dir(out, f"{scenario.name}-check", started)
    results = await run_checks(scenario, log_dir=directory)
    document = check_document(scenario, results, started)
    path = write_run(directory, document)
    (directory / CHECKS_FILE).write_bytes(
        orjson.dumps([r.to_conformance() for r in results], option=orjson.OPT_INDENT_2)
    )
    if as_json:
        sys.stdout.write(
            orjson.dumps([r.to_conformance() for r in results], option=orjson.OPT_INDENT_2).decode() + "\n"
        )
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        click.echo(render_checks(results, colour=colour))
        click.echo(f"results: {path}")
    return 1 if any(r.status == "FAILURE" for r in results) else 0


def check_document(
    scenario: Scenario, results: list[CheckResult], started: datetime, sdk: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A run.json document whose ``checks`` section holds ``results`` (no transports measured)."""
    target = scenario.target
    if target.reference:
        kind: dict[str, Any] = {"kind": "reference", "command": str(REFERENCE_SERVER)}
    elif target.command:
        kind = {"kind": "command", "command": target.command}
    else:
        kind = {"kind": "url", "url": target.url}
    if sdk is not None:
        kind["sdk"] = sdk
    meta = {
        "tool": {"name": "mcp-loadtest", "version": __version__},
        "started": started.isoformat(),
        "ended": datetime.now(timezone.utc).isoformat(),
        **environment(),
        "target": kind,
        "scenario_hash": scenario.scenario_hash,
        "workload_hash": scenario.workload_hash,
        "command": "check",
    }
    failures = sum(1 for r in results if r.status == "FAILURE")
    totals = {
        "calls": 0,
        "errors": 0,
        "silent_failures": 0,
        "checks": len(results),
        "check_failures": failures,
    }
    return build_run(meta, scenario.to_dict(), {}, totals, [], [r.to_dict() for r in results])
