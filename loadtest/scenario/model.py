"""The typed model of a scenario: what to run, against what, how hard, and what counts as right.

Build one with :func:`loadtest.scenario.load_scenario`, which validates every value; the classes
here trust what they are given. Durations are seconds and rates are calls per second.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

# Op and Expect live in their own module; they are imported here for Scenario.ops and kept
# importable from here, where they used to be.
from loadtest.core.names import DEFAULT_REQUEST_TIMEOUT_S, REDACTED, SERVER_TRANSPORT_NAMES, TRANSPORTS
from loadtest.scenario.identity import workload_hash
from loadtest.scenario.op import EXPECT_KINDS, METHODS, Expect, Op
from loadtest.scenario.thresholds import Threshold

__all__ = [
    "EXPECT_KINDS",
    "METHODS",
    "REDACTED",
    "TRANSPORTS",
    "Expect",
    "Health",
    "Op",
    "Scenario",
    "Soak",
    "Stage",
    "Target",
    "Workload",
]


DEFAULT_SESSIONS = 4
DEFAULT_DURATION_S = 10.0
DEFAULT_WARMUP_S = 1.0
DEFAULT_CONNECT_TIMEOUT_S = 20.0
DEFAULT_READY_TIMEOUT_S = 20.0
DEFAULT_SAMPLE_EVERY_S = 1.0
DEFAULT_STATUS_EVERY_S = 60.0
#: The default memory warm-up: the call warm-up plus this share of the planned duration.
HEALTH_WARMUP_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class Target:
    """The server under test: the bundled reference server, a command to launch, or a URL."""

    reference: bool = True
    command: str | None = None
    argv: tuple[str, ...] | None = None
    url: str | dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S
    json_response: bool = False
    stateless: bool = False
    delay_ms: float = 0.0
    #: What ``{transport}`` becomes per transport, for servers with their own names for them
    #: (e.g. ``{ http = "streamableHttp" }``); default stdio, sse, streamable-http.
    transport_names: dict[str, str] = field(default_factory=dict)
    #: A launched target that dies or hangs is launched again (restarts counted), instead of
    #: ending the transport's run there.
    restart: bool = False
    #: Reference server: keep this many KiB per HTTP session, forever (a deliberate leak).
    leak_kb_per_session: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": self.reference,
            "command": self.command,
            "url": self.url,
            "headers": dict.fromkeys(self.headers, REDACTED),
            "env": dict.fromkeys(self.env, REDACTED),
            "ready_timeout": self.ready_timeout,
        }
        if self.transport_names:
            out["transport_names"] = dict(self.transport_names)
        if self.reference:
            out.update(json_response=self.json_response, stateless=self.stateless, delay_ms=self.delay_ms)
        # Only when set, so that the scenario hash of every scenario without them is unchanged.
        if self.restart:
            out["restart"] = True
        if self.leak_kb_per_session:
            out["leak_kb_per_session"] = self.leak_kb_per_session
        return out


@dataclass(frozen=True, slots=True)
class Stage:
    """One ramp stage: over ``duration`` seconds move linearly to ``rate`` (open) or ``sessions`` (closed)."""

    duration: float
    rate: float | None = None
    sessions: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"duration": self.duration}
        if self.rate is not None:
            out["rate"] = self.rate
        if self.sessions is not None:
            out["sessions"] = self.sessions
        return out


@dataclass(frozen=True, slots=True)
class Workload:
    """How hard and how long, per transport. Times in seconds, rates in calls per second."""

    model: Literal["closed", "open"] = "closed"
    sessions: int = DEFAULT_SESSIONS
    duration: float | None = DEFAULT_DURATION_S
    requests: int = 0
    rate: float | None = None
    think_time: float = 0.0
    warmup: float = DEFAULT_WARMUP_S
    churn: int = 0
    #: Open model: calls one session may have outstanding at once (0 = no limit). With 1, as
    #: with wrk2's connections, a stalled server delays the next sends, and the latency from
    #: the intended send time (coordinated-omission corrected) shows the stall in full.
    max_in_flight: int = 1
    #: Streamable HTTP: open the optional GET stream for server-initiated messages after
    #: initialising, as the SDK clients do (older servers send progress notifications there).
    get_stream: bool = True
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    stages: tuple[Stage, ...] = ()
    #: How a session ends: ``delete`` (Streamable HTTP sends DELETE, as the spec asks) or
    #: ``abandon`` (it is just dropped). Legacy SSE and stdio sessions end by dropping the
    #: stream or closing stdin either way.
    close_sessions: Literal["delete", "abandon"] = "delete"
    #: ``auto`` (server/discover, else the initialize handshake) or a pinned protocol version.
    protocol: str = "auto"

    @property
    def total_duration(self) -> float | None:
        """The measured part's length (after warm-up): the stages' sum, or ``duration``."""
        if self.stages:
            return sum(stage.duration for stage in self.stages)
        return self.duration

    @property
    def max_sessions(self) -> int:
        """The most sessions open at once (closed-model stages may change the count)."""
        if self.stages and self.model == "closed":
            return max(stage.sessions or 0 for stage in self.stages)
        return self.sessions

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "sessions": self.sessions,
            "duration": self.duration,
            "requests": self.requests,
            "rate": self.rate,
            "think_time": self.think_time,
            "warmup": self.warmup,
            "churn": self.churn,
            "max_in_flight": self.max_in_flight,
            "get_stream": self.get_stream,
            "request_timeout": self.request_timeout,
            "connect_timeout": self.connect_timeout,
            "stages": [stage.to_dict() for stage in self.stages],
            # Only when set: the hash of every scenario without it stays what it was.
            **({"close_sessions": self.close_sessions} if self.close_sessions != "delete" else {}),
            **({"protocol": self.protocol} if self.protocol != "auto" else {}),
        }


@dataclass(frozen=True, slots=True)
class Health:
    """How a launched target's health is watched (``[health]``); times in seconds."""

    #: Time between samples of the target's memory, CPU, descriptors and threads.
    sample_every: float = DEFAULT_SAMPLE_EVERY_S
    #: Time after each server start left out of the memory slopes; None: the call warm-up
    #: plus a fifth of the planned duration (see :meth:`warmup_for`).
    warmup: float | None = None
    #: After the load, keep the server up this long and sample what it gives back.
    idle: float = 0.0
    #: No answer for this long, with calls lost meanwhile, is a hang; None: one request
    #: timeout (see :meth:`hang_after_for`).
    hang_after: float | None = None

    def warmup_for(self, workload: Workload) -> float:
        if self.warmup is not None:
            return self.warmup
        planned = workload.total_duration or 0.0
        return workload.warmup + HEALTH_WARMUP_SHARE * planned

    def hang_after_for(self, workload: Workload) -> float:
        if self.hang_after is not None:
            return self.hang_after
        # Nothing answered for a whole request deadline, while calls were lost meanwhile, is a
        # hang by any reading; waiting longer (it was three deadlines, at least a minute) let
        # a 10-30 s run end as a clean pass with no calls measured.
        return workload.request_timeout

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_every": self.sample_every,
            "warmup": self.warmup,
            "idle": self.idle,
            "hang_after": self.hang_after,
        }


@dataclass(frozen=True, slots=True)
class Soak:
    """Soak mode (``[soak]``): hours at a low rate, with a status line for the job's log."""

    #: Time between one-line status reports (progress, server and generator memory).
    status_every: float = DEFAULT_STATUS_EVERY_S

    def to_dict(self) -> dict[str, Any]:
        return {"status_every": self.status_every}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario; build it with :func:`load_scenario`."""

    name: str
    description: str
    source: str
    transports: tuple[str, ...]
    target: Target
    workload: Workload
    ops: tuple[Op, ...]
    thresholds: tuple[Threshold, ...] = ()
    health: Health = field(default_factory=Health)
    #: Soak mode, when the scenario has a ``[soak]`` table.
    soak: Soak | None = None

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(op.weight for op in self.ops)

    def url_for(self, transport: str) -> str | None:
        """The URL to reach ``transport`` at, when the target is a running server."""
        url = self.target.url
        if url is None or transport == "stdio":
            return None
        if isinstance(url, str):
            return url
        return url.get(transport)

    def command_for(self, transport: str, port: int | None, python: str) -> list[str] | None:
        """The target command's argv for ``transport`` with its placeholders filled, or None.

        ``{transport}`` becomes ``stdio``, ``sse`` or ``streamable-http``. With no port (stdio)
        ``{port}`` becomes ``0``, so one command line serves every transport.
        """
        if self.target.argv is None:
            return None
        return [self._fill(arg, transport, port, python) for arg in self.target.argv]

    def env_for(self, transport: str, port: int | None, python: str) -> dict[str, str]:
        """``target.env`` for ``transport``, with the same placeholders filled as the command."""
        return {name: self._fill(value, transport, port, python) for name, value in self.target.env.items()}

    def _fill(self, text: str, transport: str, port: int | None, python: str) -> str:
        name = self.target.transport_names.get(transport) or SERVER_TRANSPORT_NAMES.get(transport, transport)
        return text.replace("{transport}", name).replace("{port}", str(port or 0)).replace("{python}", python)

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario as plain JSON data (secrets redacted), as run.json records it."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "transports": list(self.transports),
            "target": self.target.to_dict(),
            "workload": self.workload.to_dict(),
            "ops": [op.to_dict() for op in self.ops],
            "thresholds": [t.expr for t in self.thresholds],
            # Only when given, so that run.json of a scenario without them is as it was.
            **({"health": self.health.to_dict()} if self.health != Health() else {}),
            **({"soak": self.soak.to_dict()} if self.soak is not None else {}),
        }

    @property
    def scenario_hash(self) -> str:
        """Identifies what was measured: equal hashes mean comparable runs.

        Labels (name, description, source), the pass/fail thresholds and how health is watched
        (``health``, ``soak``) are left out: they do not change the measurement.
        """
        data = self.to_dict()
        for key in ("name", "description", "source", "thresholds", "health", "soak"):
            data.pop(key, None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def workload_hash(self) -> str:
        """Identifies what was asked of the target, not where it lives (see scenario.identity)."""
        return workload_hash(self.to_dict())
