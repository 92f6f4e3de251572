"""The load generator: runs a scenario's workload on each transport and feeds the recorder.

Transports run one after another, each against its own fresh target, so that they never
compete for the machine's two cores. Each transport's run is coordinated here: in this
process (:class:`~loadtest.run.transport.TransportRun`), or spread over generator worker
processes (:mod:`loadtest.run.workers`). Within a transport:

* closed model (:mod:`loadtest.run.closed_model`): ``sessions`` workers, each sending its next
  call when the last returned (plus think time);
* open model (:mod:`loadtest.run.open_model`): one scheduler releases calls at their intended
  times (:mod:`loadtest.run.plan`), each on the next session in turn, never waiting for
  earlier calls; latency is measured from the intended time (corrected for coordinated
  omission) and from the actual send.

Calls whose intended time falls in the warm-up are made but not recorded. The target's health
is watched throughout (:mod:`loadtest.run.guard`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from loadtest.measure.metrics import Recorder
from loadtest.run.clients.config import BUILTIN, ClientConfig
from loadtest.run.control import (
    GENERATOR_BUSY_LIMIT,
    GENERATOR_LAG_LIMIT_US,
    INTERRUPT_GRACE_S,
    REOPEN_BACKOFF_S,
    Progress,
    RunControl,
    TransportReport,
    WorkerShare,
)
from loadtest.run.guard import open_target
from loadtest.run.targets.reference import target_command
from loadtest.run.transport import TransportRun, run_share
from loadtest.run.workers.parent import run_transport_in_workers
from loadtest.scenario import Scenario


async def run_scenario(
    scenario: Scenario,
    recorder: Recorder,
    *,
    python: str = sys.executable,
    log_dir: Path | None = None,
    progress: Progress | None = None,
    control: RunControl | None = None,
    client: ClientConfig = BUILTIN,
    workers: int = 1,
) -> dict[str, TransportReport]:
    """Run every transport of ``scenario``; stop early (keeping results) when interrupted.

    ``client`` makes the calls: the built-in wire-level client, or an ``mcp`` SDK's own client
    in worker processes (``loadtest.run.clients``); either way every answer is checked here.
    ``workers`` > 1 splits each transport's workload over that many generator processes
    (:mod:`loadtest.run.workers`, built-in client only), whose figures are merged into ``recorder``.

    Raises :class:`TargetError` when a target cannot be started or reached; the reports of the
    transports that ran before are kept in ``recorder``.
    """
    progress = progress or Progress()
    control = control or RunControl()
    reports: dict[str, TransportReport] = {}
    for transport in scenario.transports:
        if control.interrupted.is_set():
            break
        report = reports[transport] = TransportReport()
        try:
            if workers > 1:
                await run_transport_in_workers(
                    transport, scenario, recorder, report, progress, control, python, log_dir, workers
                )
            else:
                runner = TransportRun(
                    transport, scenario, recorder, report, progress, control, python, log_dir, client
                )
                await runner.run()
        finally:
            # Transports run one after another: an interrupt now fell in this one.
            report.interrupted = control.was_interrupted
    return reports


__all__ = [
    "GENERATOR_BUSY_LIMIT",
    "GENERATOR_LAG_LIMIT_US",
    "INTERRUPT_GRACE_S",
    "REOPEN_BACKOFF_S",
    "Progress",
    "RunControl",
    "TransportReport",
    "WorkerShare",
    "open_target",
    "run_scenario",
    "run_share",
    "target_command",
]
