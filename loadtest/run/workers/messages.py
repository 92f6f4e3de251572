"""The worker protocol: typed messages, one JSON object per line.

Parent to worker, on the worker's stdin: :class:`Job`, then :class:`Go` and perhaps
:class:`Stop`; end of input means stop. Worker to parent, on its stdout: :class:`Ready`,
:class:`Tick` (every interval, warm-up included, so silence means trouble), then :class:`Done`
or :class:`Failed`. The scenario travels as data (its tables), and the worker validates it
again: nothing is unpickled from a pipe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadtest.run.targets.reference import Endpoint
from loadtest.scenario import Scenario, scenario_from_data

#: What a worker runs needs only these sections (the target is reached through the endpoint).
_SECTIONS = ("name", "workload", "ops", "health", "soak")


def scenario_data(scenario: Scenario) -> dict[str, Any]:
    """``scenario``'s sections a worker needs, as the tables of a scenario file."""
    data: dict[str, Any] = _without_none(
        {key: value for key, value in scenario.to_dict().items() if key in _SECTIONS}
    )
    workload = data["workload"]
    if workload.get("stages"):
        # The stages set the duration, and the closed model's sessions or the open one's rate.
        workload.pop("duration", None)
        workload.pop("sessions" if workload.get("model") == "closed" else "rate", None)
    else:
        workload.pop("stages", None)
    return data


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value


@dataclass(frozen=True)
class Job:
    """Worker ``index`` of ``count``: its share of one transport's run."""

    scenario: dict[str, Any]
    transport: str
    index: int
    count: int
    #: Nonce prefix, unique to this worker and the same width in every worker.
    token: str
    #: How to reach the target (stdio: the command each session starts).
    command: list[str] | None
    url: str | None
    env: dict[str, str]
    headers: dict[str, str]
    #: stdio: the file every session's server appends its stderr to (one per transport).
    stderr_log: str | None = None
    t: str = "job"

    @classmethod
    def of(
        cls, share: Scenario, transport: str, index: int, count: int, token: str, endpoint: Endpoint
    ) -> Job:
        return cls(
            scenario_data(share),
            transport,
            index,
            count,
            token,
            list(endpoint.command) if endpoint.command is not None else None,
            endpoint.url,
            dict(endpoint.env),
            dict(endpoint.headers),
            str(endpoint.stderr_log) if endpoint.stderr_log is not None else None,
        )

    def load_scenario(self) -> Scenario:
        """The share, validated again (raises :class:`~loadtest.core.errors.UsageError`)."""
        return scenario_from_data(self.scenario, source=f"<generator worker {self.index}>")

    def endpoint(self) -> Endpoint:
        return Endpoint(
            self.transport,
            command=self.command,
            url=self.url,
            env=self.env,
            headers=self.headers,
            stderr_log=Path(self.stderr_log) if self.stderr_log is not None else None,
        )


@dataclass(frozen=True)
class Go:
    """Start the clock at ``t0_ns`` (``perf_counter_ns``, the system-wide monotonic clock)."""

    t0_ns: int
    t: str = "go"


@dataclass(frozen=True)
class Stop:
    """End the run now (an interrupt); results still go out."""

    t: str = "stop"


@dataclass(frozen=True)
class Ready:
    """The worker's first session is up."""

    protocol_version: str | None
    server_info: dict[str, Any]
    #: How the version was chosen: discover, initialize or pinned.
    protocol_chosen_by: str | None = None
    t: str = "ready"


@dataclass(frozen=True)
class OpInterval:
    """One op's interval: cumulative counters and the interval's histograms (encoded)."""

    counts: dict[str, Any]
    hdr: str | None
    hdr_uncorrected: str | None


@dataclass(frozen=True)
class Tick:
    """An interval boundary at ``now`` (``final``: the worker's last)."""

    now: int
    warming: bool
    final: bool
    ops: dict[str, OpInterval] = field(default_factory=dict)
    t: str = "tick"


@dataclass(frozen=True)
class OwnTotals:
    """A worker's own totals of one op, against which the parent checks its merge."""

    count: int
    recorded: int


@dataclass(frozen=True)
class Done:
    """The worker's end: what is not in the intervals."""

    sessions: dict[str, Any]
    generator: dict[str, Any]
    server: dict[str, Any]
    client: dict[str, Any]
    error: str | None
    ops: dict[str, OwnTotals]
    examples: dict[str, dict[str, list[dict[str, Any]]]]
    error_examples: dict[str, dict[str, list[dict[str, Any]]]]
    setup: dict[str, Any] | None = None
    #: Ops the negotiated protocol removed, not sent (``transports.<t>.skipped_ops``).
    skipped_ops: dict[str, str] = field(default_factory=dict)
    t: str = "done"


@dataclass(frozen=True)
class Failed:
    """The worker could not do its share."""

    message: str
    exit_code: int
    t: str = "error"


Message = Job | Go | Stop | Ready | Tick | Done | Failed


def encode(message: Message) -> bytes:
    """One line of the protocol."""
    return orjson.dumps(asdict(message)) + b"\n"


def decode(line: bytes) -> Message:
    """The message on ``line``; raises ``ValueError`` for anything else."""
    data = orjson.loads(line)
    if not isinstance(data, dict):
        raise ValueError(f"not a worker message: {line[:100]!r}")
    kind = data.pop("t", None)
    try:
        if kind == "job":
            return Job(**data)
        if kind == "go":
            return Go(**data)
        if kind == "stop":
            return Stop()
        if kind == "ready":
            return Ready(**data)
        if kind == "tick":
            ops = {name: OpInterval(**op) for name, op in data.pop("ops").items()}
            return Tick(**data, ops=ops)
        if kind == "done":
            own = {name: OwnTotals(**op) for name, op in data.pop("ops").items()}
            return Done(**data, ops=own)
        if kind == "error":
            return Failed(**data)
    except TypeError as exc:
        raise ValueError(f"malformed {kind} message: {exc}") from None
    raise ValueError(f"unknown worker message {kind!r}")


__all__ = [
    "Done",
    "Failed",
    "Go",
    "Job",
    "Message",
    "OpInterval",
    "OwnTotals",
    "Ready",
    "Stop",
    "Tick",
    "decode",
    "encode",
    "scenario_data",
]
