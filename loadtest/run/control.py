"""What the run engine shares with its callers: progress, stopping, reports, a worker's share.

Kept apart from the engine itself so that the coordinators (one process, worker processes)
and whoever displays progress can import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from loadtest.core.names import GENERATOR_BUSY_LIMIT, GENERATOR_LAG_LIMIT_US
from loadtest.measure.metrics import Recorder
from loadtest.run.targets.reference import Endpoint

#: How long in-flight calls may finish after an interrupt before they are abandoned.
INTERRUPT_GRACE_S = 2.0
#: Pause before reopening a session that failed mid-run, so a dead server is not hammered.
REOPEN_BACKOFF_S = 0.2


class Progress:
    """What the driver tells whoever displays progress (see ``loadtest.present.progress``)."""

    def transport_started(
        self, transport: str, planned_s: float | None, planned_calls: int | None
    ) -> None: ...

    def tick(self, transport: str, elapsed_s: float, warming: bool, recorder: Recorder) -> None: ...

    def transport_done(self, transport: str) -> None: ...

    def note(self, text: str) -> None: ...

    def status(self, transport: str, figures: dict[str, Any]) -> None:
        """Soak mode: a periodic status (see :func:`loadtest.run.ticker.status_figures`)."""


@dataclass
class RunControl:
    """Shared between the driver and whoever may stop it (signal handler, tests)."""

    interrupted: anyio.Event = field(default_factory=anyio.Event)
    #: Set when the run ended early because of an interrupt.
    was_interrupted: bool = False


@dataclass
class WorkerShare:
    """This process is generator worker ``index`` of ``count`` (see :mod:`loadtest.run.workers`).

    The parent launched the target and split the workload; the worker drives its share
    against ``endpoint`` and reports every interval through ``interval``.
    """

    index: int
    count: int
    #: Nonce prefix, unique to this worker and the same width in every worker.
    token: str
    endpoint: Endpoint
    #: Waits for the parent's common start time (a ``perf_counter_ns`` value) and returns it,
    #: so that every worker's warm-up, intervals and end fall at the same instants.
    start: Callable[[], Awaitable[int]]
    #: Called at every interval boundary before the recorder folds the interval into the
    #: totals: ``(now_ns, warming, final)``.
    interval: Callable[[int, bool, bool], None]


@dataclass
class TransportReport:
    """What a transport's run learned besides the recorder's numbers."""

    protocol_version: str | None = None
    #: How the version was chosen: discover, initialize or pinned.
    protocol_chosen_by: str | None = None
    server_info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    #: How opening the planned sessions went (``transports.<t>.setup``, see loadtest.run.setup).
    setup: dict[str, Any] | None = None
    #: An interrupt (SIGINT/SIGTERM) ended this transport's run before its plan did.
    interrupted: bool = False


__all__ = [
    "GENERATOR_BUSY_LIMIT",
    "GENERATOR_LAG_LIMIT_US",
    "INTERRUPT_GRACE_S",
    "REOPEN_BACKOFF_S",
    "Progress",
    "RunControl",
    "TransportReport",
    "WorkerShare",
]
