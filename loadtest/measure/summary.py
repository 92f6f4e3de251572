"""The typed measurement sections of run.json: op summary, sessions, transport section.

They sit in ``measure`` (not ``results``) because the recorder produces them and the layers
let it import nothing above itself; :mod:`loadtest.results.model` re-exports them with the
run document. Each has ``to_json()`` (the only code that shapes these keys) and
``from_json()`` (lenient about keys older runs lack; unknown keys kept in ``extra`` and
written back, so a document survives a read-write round trip whatever a newer tool added).

``generator``, ``client`` and ``server`` are :class:`~typing.TypedDict` rather than
dataclasses: they are open bags of facts that grow with every feature (the contract says "add
freely"), are produced by three different parts of ``run`` and read by key in reports; a
TypedDict names the known keys for mypy and costs no conversion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from loadtest.measure.histograms import PERCENTILES, mean, percentiles

Json = dict[str, Any]


def _extra(data: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class Latency:
    """``latency_us``: percentiles, max and mean in µs; all ``None`` when nothing was answered.

    ``None`` rather than 0: an op whose every call was lost has no latency, and a 0 would read
    as infinitely fast to whatever compares runs.
    """

    p50: int | None = None
    p90: int | None = None
    p99: int | None = None
    p999: int | None = None
    max: int | None = None
    mean: float | None = None

    @classmethod
    def of(cls, hist: Any) -> Latency:
        """The summary of a histogram."""
        values = percentiles(hist, [p for _, p in PERCENTILES])
        if values is None:
            return cls()
        avg = mean(hist)
        p50, p90, p99, p999 = (values[p] for _, p in PERCENTILES)
        return cls(p50, p90, p99, p999, int(hist.get_max_value()), None if avg is None else round(avg, 1))

    def to_json(self) -> Json:
        return {
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "p999": self.p999,
            "max": self.max,
            "mean": self.mean,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Latency:
        data = data or {}
        avg = data.get("mean")
        p50, p90, p99, p999 = (_int(data.get(key)) for key, _ in PERCENTILES)
        return cls(p50, p90, p99, p999, _int(data.get("max")), None if avg is None else float(avg))


def latency_summary(hist: Any) -> Json:
    """``{"p50","p90","p99","p999","max","mean"}`` in µs; all ``None`` for an empty histogram."""
    return Latency.of(hist).to_json()


@dataclass(frozen=True, slots=True)
class SetupLatency:
    """``sessions.setup_latency_us``: how long sessions took to open, in µs."""

    p50: int | None = None
    p99: int | None = None
    max: int | None = None

    @classmethod
    def of(cls, hist: Any) -> SetupLatency:
        values = percentiles(hist, (50.0, 99.0))
        if values is None:
            return cls()
        return cls(values[50.0], values[99.0], int(hist.get_max_value()))

    def to_json(self) -> Json:
        return {"p50": self.p50, "p99": self.p99, "max": self.max}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> SetupLatency:
        data = data or {}
        return cls(_int(data.get("p50")), _int(data.get("p99")), _int(data.get("max")))


@dataclass(frozen=True, slots=True)
class Sessions:
    """``sessions``: opened and failed session set-ups, and their latency."""

    opened: int = 0
    failed: int = 0
    setup_latency_us: SetupLatency = field(default_factory=SetupLatency)
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("opened", "failed", "setup_latency_us")

    def to_json(self) -> Json:
        return {
            "opened": self.opened,
            "failed": self.failed,
            "setup_latency_us": self.setup_latency_us.to_json(),
            **self.extra,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Sessions:
        data = data or {}
        return cls(
            int(data.get("opened") or 0),
            int(data.get("failed") or 0),
            SetupLatency.from_json(data.get("setup_latency_us")),
            _extra(data, cls._KEYS),
        )


#: Kept examples of failures, by kind: each a small JSON object (see ``OpStats``).
Examples = Mapping[str, list[Json]]


@dataclass(frozen=True, slots=True)
class OpSummary:
    """One op of ``transports.<t>.ops``: counts, failures by kind, latency, histograms."""

    count: int = 0
    ok: int = 0
    #: Loud failures by kind.
    errors: Mapping[str, int] = field(default_factory=dict)
    #: Silent failures by kind (README, "Silent failures").
    silent: Mapping[str, int] = field(default_factory=dict)
    latency_us: Latency = field(default_factory=Latency)
    #: HdrHistogram V2 base64, corrected (from the intended send time).
    hdr: str = ""
    #: The same, from the actual send time.
    hdr_uncorrected: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    #: Calls per second over the measured window.
    rate: float = 0.0
    #: Latencies above the histogram's range (recorded at its top, counted here).
    out_of_range: int = 0
    silent_examples: Examples = field(default_factory=dict)
    error_examples: Examples = field(default_factory=dict)
    #: The tag of this op's lines in the transport's interval log.
    hlog_tag: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = (
        "count",
        "ok",
        "errors",
        "silent",
        "latency_us",
        "hdr",
        "hdr_uncorrected",
        "bytes_in",
        "bytes_out",
        "rate",
        "out_of_range",
        "silent_examples",
        "error_examples",
        "hlog_tag",
    )

    def to_json(self) -> Json:
        return {
            "count": self.count,
            "ok": self.ok,
            "errors": dict(self.errors),
            "silent": dict(self.silent),
            "latency_us": self.latency_us.to_json(),
            "hdr": self.hdr,
            "hdr_uncorrected": self.hdr_uncorrected,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "rate": self.rate,
            "out_of_range": self.out_of_range,
            "silent_examples": {kind: list(kept) for kind, kept in self.silent_examples.items()},
            "error_examples": {kind: list(kept) for kind, kept in self.error_examples.items()},
            "hlog_tag": self.hlog_tag,
            **self.extra,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], name: str = "") -> OpSummary:
        return cls(
            count=int(data.get("count") or 0),
            ok=int(data.get("ok") or 0),
            errors=dict(data.get("errors") or {}),
            silent=dict(data.get("silent") or {}),
            latency_us=Latency.from_json(data.get("latency_us")),
            hdr=str(data.get("hdr") or ""),
            hdr_uncorrected=str(data.get("hdr_uncorrected") or ""),
            bytes_in=int(data.get("bytes_in") or 0),
            bytes_out=int(data.get("bytes_out") or 0),
            rate=float(data.get("rate") or 0.0),
            out_of_range=int(data.get("out_of_range") or 0),
            silent_examples=dict(data.get("silent_examples") or {}),
            error_examples=dict(data.get("error_examples") or {}),
            hlog_tag=str(data.get("hlog_tag") or name),
            extra=_extra(data, cls._KEYS),
        )


class Generator(TypedDict, total=False):
    """``generator``: the load generator's own cost while a transport was measured."""

    cpu_s: float | None
    lag_p99_us: int | None
    lag_max_us: int
    wall_s: float
    cpu_busy: float
    saturated: bool
    in_flight_max: int
    #: Why the generator may be the bottleneck, if so: ``{cause: own_cpu|own_busy|elsewhere}``.
    bottleneck: dict[str, Any] | None
    own_lag_p99_us: int
    rss_start_bytes: int
    rss_peak_bytes: int
    rss_end_bytes: int
    rss_samples: list[list[Any]]


class Client(TypedDict, total=False):
    """``client``: which client made the calls, and its CPU per measured call."""

    kind: str
    cpu_per_call_us: float | None


class Server(TypedDict, total=False):
    """``server``: a launched target's resources and health (a process monitor's summary)."""

    rss_start_bytes: int
    rss_peak_bytes: int
    rss_end_bytes: int
    cpu_s: float | None
    fds_peak: int | None
    threads_peak: int | None
    processes_peak: int | None
    #: ``[t, rss, cpu, fds, threads]`` rows, with the open sessions and segment of each.
    samples: list[list[Any]]
    sample_sessions: list[Any]
    sample_segments: list[Any]
    health: dict[str, Any]


def merge_clients(parts: Sequence[Mapping[str, Any]]) -> Client:
    """One ``client`` section from those of several generator processes.

    CPU and calls add up; the per-call CPU is recomputed from the sums (an average of
    averages would weigh a worker that made few calls like one that made many); flags hold
    if any part says so; everything else is the first part's (the same client everywhere).
    """
    parts = [part for part in parts if part]
    if not parts:
        return Client()
    out: dict[str, Any] = dict(parts[0])
    for key in ("cpu_s", "tester_cpu_s", "harness_cpu_s", "calls"):
        values = [part[key] for part in parts if part.get(key) is not None]
        if values:
            out[key] = round(sum(values), 3) if key != "calls" else sum(values)
    calls = out.get("calls") or 0
    for total, per_call in (("cpu_s", "cpu_per_call_us"), ("tester_cpu_s", "tester_cpu_per_call_us")):
        if per_call in out:
            out[per_call] = (
                round(out[total] / calls * 1e6, 1) if calls and out.get(total) is not None else None
            )
    for key in ("rss_peak_bytes", "cpu_busy"):
        values = [part[key] for part in parts if part.get(key) is not None]
        if values:
            out[key] = max(values)
    if any(part.get("saturated") for part in parts):
        out["saturated"] = True
    return cast(Client, out)


@dataclass(frozen=True, slots=True)
class TransportSection:
    """``transports.<t>``: one transport's measurement."""

    negotiated_protocol_version: str | None = None
    #: How the version was chosen: ``discover``, ``initialize`` or ``pinned``.
    protocol_chosen_by: str | None = None
    sessions: Sessions = field(default_factory=Sessions)
    ops: Mapping[str, OpSummary] = field(default_factory=dict)
    server: Server = field(default_factory=lambda: Server())
    generator: Generator = field(default_factory=lambda: Generator())
    client: Client = field(default_factory=lambda: Client())
    #: Seconds measured (the window calls and rates count over).
    measured_s: float = 0.0
    #: What the server said it is in its ``initialize`` result (``serverInfo``), if anything.
    server_info: Mapping[str, Any] = field(default_factory=dict)
    #: How opening the planned sessions went, before the clock started (``loadtest.run.setup``).
    setup: Mapping[str, Any] | None = None
    #: Why this transport could not be (fully) run, if so.
    error: str | None = None
    #: Ops not sent on this transport and why (``ping``: "removed in 2026-07-28"). They have no
    #: calls by design, so gates leave them out instead of failing them for "no data".
    skipped_ops: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = (
        "negotiated_protocol_version",
        "protocol_chosen_by",
        "sessions",
        "ops",
        "server",
        "generator",
        "client",
        "measured_s",
        "server_info",
        "setup",
        "error",
        "skipped_ops",
    )

    def to_json(self) -> Json:
        out: Json = {
            "negotiated_protocol_version": self.negotiated_protocol_version,
            "protocol_chosen_by": self.protocol_chosen_by,
            "sessions": self.sessions.to_json(),
            "ops": {name: op.to_json() for name, op in self.ops.items()},
            "server": dict(self.server),
            "generator": dict(self.generator),
            "client": dict(self.client),
            "measured_s": self.measured_s,
            "server_info": dict(self.server_info),
        }
        if self.setup is not None:
            out["setup"] = dict(self.setup)
        # Only a transport that failed has the key: readers test for its presence.
        if self.error is not None:
            out["error"] = self.error
        if self.skipped_ops:
            out["skipped_ops"] = dict(self.skipped_ops)
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TransportSection:
        version = data.get("negotiated_protocol_version")
        chosen_by = data.get("protocol_chosen_by")
        error, setup = data.get("error"), data.get("setup")
        return cls(
            negotiated_protocol_version=None if version is None else str(version),
            protocol_chosen_by=None if chosen_by is None else str(chosen_by),
            sessions=Sessions.from_json(data.get("sessions")),
            ops={
                str(name): OpSummary.from_json(op, str(name)) for name, op in (data.get("ops") or {}).items()
            },
            server=cast(Server, dict(data.get("server") or {})),
            generator=cast(Generator, dict(data.get("generator") or {})),
            client=cast(Client, dict(data.get("client") or {})),
            measured_s=float(data.get("measured_s") or 0.0),
            server_info=dict(data.get("server_info") or {}),
            setup=dict(setup) if isinstance(setup, Mapping) else None,
            error=None if error is None else str(error),
            skipped_ops={str(k): str(v) for k, v in (data.get("skipped_ops") or {}).items()},
            extra=_extra(data, cls._KEYS),
        )


__all__ = [
    "Client",
    "Examples",
    "Generator",
    "Latency",
    "OpSummary",
    "Server",
    "Sessions",
    "SetupLatency",
    "TransportSection",
    "latency_summary",
    "merge_clients",
]
