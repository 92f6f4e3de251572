"""One run from scenario to results directory: driver, recorder, run.json.

Shared by ``run`` (one run) and ``matrix`` (many runs, one per SDK environment and repeat).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, cast

import anyio

from loadtest import __version__
from loadtest.core.errors import LoadtestError
from loadtest.measure.metrics import Recorder
from loadtest.results.document import environment, write_run
from loadtest.results.model import Meta, RunDocument, Target, TransportSection, totals_of
from loadtest.run.clients.config import BUILTIN, ClientConfig
from loadtest.run.driver import Progress, RunControl, TransportReport, run_scenario
from loadtest.run.targets.reference import REFERENCE_SERVER
from loadtest.scenario import Scenario
from loadtest.scenario.threshold_eval import evaluate


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
        document = replace(document, error=str(failure))
    path = write_run(directory, document)
    return RunOutcome(document.to_json(), path, failure, control.was_interrupted)


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
) -> RunDocument:
    sections = recorder.sections()
    for name, report in reports.items():
        section = sections.get(name) or TransportSection()
        sections[name] = replace(
            section, server_info=dict(report.server_info), setup=report.setup, error=report.error or None
        )
    meta = cast(
        Meta,
        {
            "tool": {"name": "mcp-loadtest", "version": __version__},
            "started": started.isoformat(),
            "ended": datetime.now(timezone.utc).isoformat(),
            **environment(),
            "target": _target_meta(scenario, reports, python, sdk),
            # Which side of the wire made the calls: the built-in client (the server is under
            # test) or an `mcp` SDK's own client (that client is under test too).
            "client": client.meta(),
            "scenario_hash": scenario.scenario_hash,
            # What was asked of the target, not where it lives: what comparisons key on.
            "workload_hash": scenario.workload_hash,
            # Generator processes; not part of the scenario (nor its hash): the load is the same.
            "workers": workers,
        },
    )
    partial_note: str | None = None
    if any(report.interrupted for report in reports.values()):
        # A SIGINT/SIGTERM run is not the planned run: say so, and what ran, so that compare
        # and baselines need not take a few seconds of one transport for the whole.
        meta["partial"] = True
        meta["ran"] = ran = _what_ran(scenario, reports, sections)
        note = ", ".join(
            f"{name} {part['measured_s']:g}s of {part['planned_s']:g}s"
            if part.get("planned_s")
            else f"{name} {part['measured_s']:g}s"
            for name, part in ran["transports"].items()
        )
        not_run = f"; not run: {', '.join(ran['not_run'])}" if ran["not_run"] else ""
        # The top-level note is what `report` and the HTML report show for a partial run.
        partial_note = f"interrupted: measured {note}{not_run}"
    transports = {name: section.to_json() for name, section in sections.items()}
    thresholds = [result.to_dict() for result in evaluate(scenario.thresholds, transports)]
    return RunDocument(
        meta, scenario.to_dict(), sections, totals_of(sections), thresholds, checks, partial=partial_note
    )


def _what_ran(
    scenario: Scenario, reports: dict[str, TransportReport], sections: Mapping[str, TransportSection]
) -> dict[str, Any]:
    """``meta.ran`` of an interrupted run: per transport, complete or not, measured of planned."""
    planned = scenario.workload.total_duration
    ran: dict[str, Any] = {}
    for name, report in reports.items():
        section = sections.get(name) or TransportSection()
        ran[name] = {
            "completed": not report.interrupted,
            "measured_s": section.measured_s,
            "planned_s": planned,
            "planned_requests": scenario.workload.requests or None,
            "calls": sum(op.count for op in section.ops.values()),
        }
    return {
        "reason": "interrupted (SIGINT/SIGTERM)",
        "transports": ran,
        "not_run": [name for name in scenario.transports if name not in reports],
    }


#: Servers whose ``serverInfo.version`` is the version of the ``mcp`` SDK they run on.
_SDK_OF_SERVER_NAME = {"mcp-loadtest-reference": "mcp"}


def _target_meta(
    scenario: Scenario,
    reports: dict[str, TransportReport],
    python: str,
    sdk: Mapping[str, Any] | None,
) -> Target:
    """What was measured; its SDK only when known, never guessed from the tester's own.

    Known means: a matrix environment built for it (``sdk``), the bundled reference server
    (the ``mcp`` installed for ``python``), or a server whose ``serverInfo`` names its SDK's
    version. Any other command or URL (a TypeScript server, say) gets ``sdk: null`` and
    ``sdk_source: "unknown"``; its ``serverInfo`` is what identifies it.
    """
    target = scenario.target
    meta: Target
    if target.reference:
        meta = {"kind": "reference", "command": str(REFERENCE_SERVER)}
    elif target.command:
        meta = {"kind": "command", "command": target.command}
    else:
        meta = {"kind": "url", "url": target.url}
    server_info: dict[str, Any] = next((dict(r.server_info) for r in reports.values() if r.server_info), {})
    reported = _SDK_OF_SERVER_NAME.get(str(server_info.get("name")))
    found: dict[str, Any] | None = None
    if sdk is not None:
        found, source = dict(sdk), "environment"
    elif target.reference and (installed := sdk_version(python)) is not None:
        found, source = dict(installed), "reference"
    elif reported is not None and server_info.get("version"):
        found, source = {"name": reported, "version": str(server_info["version"])}, "server_info"
    else:
        source = "unknown"
    meta["sdk"] = found
    meta["sdk_source"] = source
    meta["server_info"] = server_info
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
