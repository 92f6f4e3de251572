"""One run from scenario to results directory: driver, recorder, run.json.

Shared by ``run`` (one run) and ``matrix`` (many runs, one per SDK environment and repeat).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anyio

from loadtest import __version__
from loadtest.core.errors import LoadtestError
from loadtest.measure.metrics import Recorder
from loadtest.results.document import build_run, environment, write_run
from loadtest.run.clients.config import BUILTIN, ClientConfig
from loadtest.run.driver import Progress, RunControl, TransportReport, run_scenario
from loadtest.run.targets.reference import REFERENCE_SERVER
from loadtest.scenario.model import Scenario
from loadtest.scenario.thresholds import evaluate


@dataclass(frozen=True)
class RunOutcome:
    """What a run left: its document (as written), where, and how it ended."""

    document: dict[str, Any]
    path: Path
    #: Why the run could not be carried out (a target that would not start), if so.
    failure: LoadtestError | None
    interrupted: bool

    @property
    def thresholds_passed(self) -> bool:
        return all(item["passed"] for item in self.document["thresholds"])

    @property
    def target_failures(self) -> int:
        """How often a launched target crashed, hung or could not be relaunched: each fails the run."""
        total = 0
        for section in (self.document.get("transports") or {}).values():
            health = (section.get("server") or {}).get("health") or {}
            total += sum(int(health.get(key) or 0) for key in ("crashes", "hangs", "restart_failures"))
        return total


async def execute(
    scenario: Scenario,
    directory: Path,
    *,
    python: str = sys.executable,
    progress: Progress | None = None,
    control: RunControl | None = None,
    sdk: Mapping[str, Any] | None = None,
    checks: list[dict[str, Any]] | None = None,
    client: ClientConfig = BUILTIN,
    workers: int = 1,
) -> RunOutcome:
    """Run ``scenario`` into ``directory``; the results are written whatever happens.

    ``python`` runs the bundled reference server (and fills ``{python}`` in a target
    command); ``sdk`` describes the environment it belongs to, for the results' metadata;
    ``checks`` are conformance results of the same target, kept in the ``checks`` section;
    ``client`` makes the calls (``meta.client`` says which); ``workers`` > 1 spreads the load
    over that many generator processes (``meta.workers``).
    """
    started = datetime.now(timezone.utc)
    control = control or RunControl()
    recorder = Recorder(out_dir=directory)
    failure: LoadtestError | None = None
    reports: dict[str, TransportReport] = {}
    try:
        reports = await run_scenario(
            scenario,
            recorder,
            python=python,
            log_dir=directory,
            progress=progress,
            control=control,
            client=client,
            workers=workers,
        )
    except LoadtestError as exc:
        failure = exc
    recorder.finish()
    document = _document(scenario, recorder, reports, started, python, sdk, checks, client, workers)
    if failure is not None:
        document["error"] = str(failure)
    path = write_run(directory, document)
    return RunOutcome(document, path, failure, control.was_interrupted)


async def watch_signals(control: RunControl) -> None:
    """SIGINT/SIGTERM stop the run gracefully; a second one stops waiting for in-flight calls."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if control.interrupted.is_set():
                raise KeyboardInterrupt
            control.interrupted.set()


def _document(
    scenario: Scenario,
    recorder: Recorder,
    reports: dict[str, TransportReport],
    started: datetime,
    python: str,
    sdk: Mapping[str, Any] | None,
    checks: list[dict[str, Any]] | None,
    client: ClientConfig,
    workers: int,
) -> dict[str, Any]:
    transports = recorder.summary()
    for name, report in reports.items():
        section = transports.setdefault(name, {})
        section["server_info"] = report.server_info
        if report.setup is not None:
            section["setup"] = report.setup
        if report.error:
            section["error"] = report.error
    meta = {
        "tool": {"name": "mcp-loadtest", "version": __version__},
        "started": started.isoformat(),
        "ended": datetime.now(timezone.utc).isoformat(),
        **environment(),
        "target": _target_meta(scenario, reports, python, sdk),
        # Which side of the wire made the calls: the built-in client (the server is under
        # test) or an `mcp` SDK's own client (that client is under test too).
        "client": client.meta(),
        "scenario_hash": scenario.scenario_hash,
        # Generator processes; not part of the scenario (nor its hash): the load is the same.
        "workers": workers,
    }
    partial_note = ""
    if any(report.interrupted for report in reports.values()):
        # A SIGINT/SIGTERM run is not the planned run: say so, and what ran, so that compare
        # and baselines need not take a few seconds of one transport for the whole.
        meta["partial"] = True
        meta["ran"] = ran = _what_ran(scenario, reports, transports)
        note = ", ".join(
            f"{name} {part['measured_s']:g}s of {part['planned_s']:g}s"
            if part.get("planned_s")
            else f"{name} {part['measured_s']:g}s"
            for name, part in ran["transports"].items()
        )
        not_run = f"; not run: {', '.join(ran['not_run'])}" if ran["not_run"] else ""
        partial_note = f"interrupted: measured {note}{not_run}"
    thresholds = [result.to_dict() for result in evaluate(scenario.thresholds, transports)]
    document = build_run(meta, scenario.to_dict(), transports, recorder.totals(), thresholds, checks)
    if partial_note:
        # The top-level note is what `report` and the HTML report show for a partial run.
        document["partial"] = partial_note
    return document


def _what_ran(
    scenario: Scenario, reports: dict[str, TransportReport], transports: dict[str, Any]
) -> dict[str, Any]:
    """``meta.ran`` of an interrupted run: per transport, complete or not, measured of planned."""
    planned = scenario.workload.total_duration
    ran: dict[str, Any] = {}
    for name, report in reports.items():
        section = transports.get(name) or {}
        ran[name] = {
            "completed": not report.interrupted,
            "measured_s": section.get("measured_s", 0.0),
            "planned_s": planned,
            "planned_requests": scenario.workload.requests or None,
            "calls": sum(int(op.get("count") or 0) for op in (section.get("ops") or {}).values()),
        }
    return {
        "reason": "interrupted (SIGINT/SIGTERM)",
        "transports": ran,
        "not_run": [name for name in scenario.transports if name not in reports],
    }


def _target_meta(
    scenario: Scenario,
    reports: dict[str, TransportReport],
    python: str,
    sdk: Mapping[str, Any] | None,
) -> dict[str, Any]:
    target = scenario.target
    if target.reference:
        meta: dict[str, Any] = {"kind": "reference", "command": str(REFERENCE_SERVER)}
    elif target.command:
        meta = {"kind": "command", "command": target.command}
    else:
        meta = {"kind": "url", "url": target.url}
    if sdk is not None:
        meta["sdk"] = dict(sdk)
    elif target.reference or target.command:
        meta["sdk"] = sdk_version(python)
    meta["server_info"] = next((r.server_info for r in reports.values() if r.server_info), {})
    return meta


def sdk_version(python: str) -> dict[str, str] | None:
    """The `mcp` version installed for ``python`` (the launched server's SDK), if any."""
    if python == sys.executable:
        try:
            return {"name": "mcp", "version": version("mcp")}
        except PackageNotFoundError:
            return None
    try:
        out = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('mcp'))"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"name": "mcp", "version": out.stdout.strip()}
