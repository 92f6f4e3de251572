"""A run document rebuilt from the logs of a run that never wrote run.json (it was killed).

run.json is written once, at the end. A soak killed hours in (SIGKILL, an OOM kill, a lost
machine) leaves its interval logs (``<transport>.hlog``) and health logs
(``health-<transport>.jsonl``), both flushed as the run went. From them this module builds a
document in run.json's shape, marked ``partial``, that ``report`` renders like any other:
latencies per op from the intervals, counts and failures from the last counters in the
health log, the server's samples, events and health verdict, the generator's memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadtest.core.errors import UsageError
from loadtest.measure.health import Sample
from loadtest.measure.health_section import health_section
from loadtest.measure.metrics import (
    HIGHEST_US,
    LOWEST_US,
    SIGNIFICANT_DIGITS,
    UNCORRECTED_SUFFIX,
    encode_histogram,
    latency_summary,
    new_histogram,
)
from loadtest.results.document import SCHEMA
from loadtest.results.health_log import HealthRecord, health_log_path, read_health_log

__all__ = ["PARTIAL_NOTE", "can_rebuild", "rebuild_run"]

PARTIAL_NOTE = "no run.json: the run did not finish; rebuilt from its interval and health logs"


def can_rebuild(directory: Path) -> bool:
    """Whether ``directory`` holds a run's logs (interval or health logs)."""
    return directory.is_dir() and (any(directory.glob("*.hlog")) or any(directory.glob("health-*.jsonl")))


def _transports(directory: Path) -> list[str]:
    names = {path.stem for path in directory.glob("*.hlog")}
    names |= {path.stem.removeprefix("health-") for path in directory.glob("health-*.jsonl")}
    return sorted(names)


def _read_hlog(path: Path) -> tuple[dict[str, tuple[Any, Any]], float]:
    """Per op tag, its merged (corrected, uncorrected) histograms; and the seconds covered."""
    out: dict[str, tuple[Any, Any]] = {}
    if not path.is_file():
        return out, 0.0
    reader = HistogramLogReader(str(path), HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS))
    first: float | None = None
    last = 0.0
    try:
        while True:
            try:
                interval = reader.get_next_interval_histogram()
            except (ValueError, TypeError):  # the torn last line of a killed run
                break
            if interval is None:
                break
            tag = interval.get_tag() or ""
            op, uncorrected = tag, False
            if tag.endswith(UNCORRECTED_SUFFIX):
                op, uncorrected = tag[: -len(UNCORRECTED_SUFFIX)], True
            pair = out.setdefault(op, (new_histogram(), new_histogram()))
            if interval.get_total_count():
                pair[1 if uncorrected else 0].add(interval)
            start = interval.get_start_time_stamp() / 1000
            first = start if first is None else min(first, start)
            last = max(last, interval.get_end_time_stamp() / 1000)
    finally:
        reader.close()
    return out, (last - first) if first is not None else 0.0


def _ops(
    histograms: Mapping[str, tuple[Any, Any]], counters: Mapping[str, Any], measured_s: float
) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    for name in [*histograms, *(n for n in counters if n not in histograms)]:
        corrected, uncorrected = histograms.get(name) or (new_histogram(), new_histogram())
        counted = counters.get(name)
        if isinstance(counted, list) and len(counted) == 4:
            count, ok, errors, silent = counted
        else:
            # No counters logged: the answered calls are all that is known.
            count = ok = int(corrected.get_total_count())
            errors, silent = {}, {}
        ops[name] = {
            "count": count,
            "ok": ok,
            "errors": dict(errors),
            "silent": dict(silent),
            "latency_us": latency_summary(corrected),
            "hdr": encode_histogram(corrected),
            "hdr_uncorrected": encode_histogram(uncorrected),
            "rate": round(count / measured_s, 3) if measured_s > 0 else 0.0,
            "silent_examples": {},
            "hlog_tag": name,
        }
    return ops


def _samples(rows: Sequence[Mapping[str, Any]]) -> list[Sample]:
    return [
        Sample(
            float(r["t"]),
            int(r["rss"]),
            r.get("fds"),
            r.get("threads"),
            r.get("sessions"),
            int(r.get("seg") or 0),
        )
        for r in rows
        if r.get("rss") is not None
    ]


def _server(record: HealthRecord) -> dict[str, Any]:
    rows = [r for r in record.samples if r.get("rss") is not None]
    header = record.header
    samples = _samples(rows)
    server: dict[str, Any] = {}
    if rows:
        server = {
            "rss_start_bytes": rows[0]["rss"],
            "rss_peak_bytes": max(r["rss"] for r in rows),
            "rss_end_bytes": rows[-1]["rss"],
            "cpu_s": rows[-1].get("cpu"),
            "fds_peak": max((r["fds"] for r in rows if r.get("fds") is not None), default=None),
            "threads_peak": max((r["threads"] for r in rows if r.get("threads") is not None), default=None),
            "samples": [[r["t"], r["rss"], r.get("cpu"), r.get("fds"), r.get("threads")] for r in rows],
            "sample_sessions": [r.get("sessions") for r in rows],
            "sample_segments": [r.get("seg") for r in rows],
        }
    counts: dict[str, int] = {}
    for event in record.events:
        counts[str(event.get("event"))] = counts.get(str(event.get("event")), 0) + 1
    measuring = next((e for e in record.events if e.get("event") == "measuring"), None)
    idle_event = next((e for e in record.events if e.get("event") == "idle"), None)
    idle = None
    if idle_event is not None:
        start = float(idle_event["t"])
        before = [s for s in samples if s.t <= start]
        idle = (
            start,
            before[-1] if before else None,
            samples[-1] if samples else None,
            samples[-1].t - start if samples else 0.0,
        )
    server["health"] = health_section(
        samples,
        sample_every_s=float(header.get("sample_every_s") or 1.0),
        warmup_s=float(header.get("warmup_s") or 0.0),
        per_session=bool(header.get("per_session", True)),
        watched=bool(rows),
        measure_start_s=float(measuring["t"]) if measuring else None,
        counts=counts,
        events=[e for e in record.events if e.get("event") in ("crash", "hang", "restart", "restart_failed")],
        idle=idle,
    )
    return server


def _generator(record: HealthRecord) -> dict[str, Any]:
    rows = [(r["t"], r["gen_rss"]) for r in record.samples if r.get("gen_rss") is not None]
    if not rows:
        return {}
    return {
        "cpu_s": record.samples[-1].get("gen_cpu"),
        "rss_start_bytes": rows[0][1],
        "rss_peak_bytes": max(rss for _, rss in rows),
        "rss_end_bytes": rows[-1][1],
        "rss_samples": [list(row) for row in rows],
    }


def rebuild_run(directory: Path) -> dict[str, Any]:
    """The run document of ``directory`` from its logs; :class:`UsageError` if it has none."""
    if not can_rebuild(directory):
        raise UsageError(f"{directory}: no run.json, and no interval or health logs to rebuild the run from")
    transports: dict[str, Any] = {}
    started: str | None = None
    for transport in _transports(directory):
        record = read_health_log(health_log_path(directory, transport))
        started = started or record.header.get("started")
        histograms, measured_s = _read_hlog(directory / f"{transport}.hlog")
        counters = (record.samples[-1].get("ops") or {}) if record.samples else {}
        transports[transport] = {
            "negotiated_protocol_version": None,
            "sessions": {"opened": max((r.get("sessions") or 0 for r in record.samples), default=0)},
            "ops": _ops(histograms, counters, measured_s),
            "server": _server(record),
            "generator": _generator(record),
            "measured_s": round(measured_s, 3),
        }
    totals = {"calls": 0, "errors": 0, "silent_failures": 0}
    for section in transports.values():
        for stats in section["ops"].values():
            totals["calls"] += stats["count"]
            totals["errors"] += sum(stats["errors"].values())
            totals["silent_failures"] += sum(stats["silent"].values())
    return {
        "schema": SCHEMA,
        "partial": PARTIAL_NOTE,
        "meta": {"started": started, "ended": None},
        "scenario": {"name": directory.name},
        "transports": transports,
        "totals": totals,
        "thresholds": [],
    }
