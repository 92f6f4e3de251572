"""The end-of-run summary for people: one table per run, silent failures impossible to miss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadtest.core.names import GENERATOR_BUSY_LIMIT
from loadtest.core.units import format_latency_us

_COLUMNS = ("transport", "op", "calls", "rate/s", "p50", "p90", "p99", "p99.9", "max", "errors", "silent")
_RIGHT = frozenset(_COLUMNS[2:])


class Style:
    """ANSI styling when writing to a terminal; plain text otherwise."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        return self._wrap("1;31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def summary_rows(transports: Mapping[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    for transport, section in transports.items():
        for op, stats in section.get("ops", {}).items():
            latency = stats.get("latency_us", {})
            answered = stats.get("count", 0) - stats.get("silent", {}).get("lost", 0)

            def lat(key: str, latency: Mapping[str, Any] = latency, answered: int = answered) -> str:
                return format_latency_us(latency[key]) if answered and key in latency else "-"

            rows.append(
                [
                    transport,
                    op,
                    str(stats.get("count", 0)),
                    f"{stats.get('rate', 0.0):.1f}",
                    lat("p50"),
                    lat("p90"),
                    lat("p99"),
                    lat("p999"),
                    lat("max"),
                    str(sum(stats.get("errors", {}).values())),
                    str(sum(stats.get("silent", {}).values())),
                ]
            )
    return rows


def _generator_lines(transport: str, generator: dict[str, Any], style: Style) -> list[str]:
    """The generator's warning (or note), by the cause the run found (loadtest.run.bottleneck)."""
    found = generator.get("bottleneck")
    cause = found.get("cause") if isinstance(found, dict) else None
    if cause is None and not generator.get("saturated"):
        return []
    workers = generator.get("workers") or 1
    # Each worker is one event loop: its share of one core is what can run out.
    where = f" in the busiest of {workers} workers" if workers > 1 else ""
    busy = generator.get("cpu_busy", 0)
    lag = format_latency_us(generator.get("lag_p99_us") or 0)
    hint = "; with cores to spare, --workers spreads the load" if busy > GENERATOR_BUSY_LIMIT else ""
    if cause is None:
        # A run from before the cause was recorded: all it says is "saturated".
        why = f" (CPU {busy:.0%} of one core{where}, event-loop lag p99 {lag}):"
    elif cause == "elsewhere":
        return [
            style.dim(
                f"note: on {transport} the event loop woke late (lag p99 {lag}) while the generator was "
                f"mostly idle (CPU {busy:.0%} of one core{where}): the lag came from elsewhere (other "
                "processes on this machine), not from the generator"
            )
        ]
    elif cause == "own_cpu":
        why = f": its own CPU was {busy:.0%} of one core{where} (event-loop lag p99 {lag});"
    else:
        own = format_latency_us(generator.get("own_lag_p99_us") or 0)
        why = (
            f": its event loop woke late while busy with its own work (lag p99 {lag}, {own} of it its own;"
            f" CPU {busy:.0%} of one core{where});"
        )
    return [
        style.red(
            f"warning: on {transport} the load generator may be the bottleneck{why}"
            f" latencies include its own delays{hint}"
        )
    ]


def render_summary(run: Mapping[str, Any], style: Style) -> str:
    """The table, then sessions, silent failures, thresholds and totals, as text."""
    transports: Mapping[str, Any] = run.get("transports", {})
    lines: list[str] = []
    under_test = _under_test(run.get("meta") or {})
    if under_test:
        lines.append(style.bold(under_test))
    rows = summary_rows(transports)
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(_COLUMNS)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if _COLUMNS[i] in _RIGHT else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    lines.append(style.bold(fmt(_COLUMNS)))
    for row in rows:
        text = fmt(row)
        if row[-1] != "0":
            text = style.red(text)
        lines.append(text)
    lines.append("")
    for transport, section in transports.items():
        sessions = section.get("sessions", {})
        setup = sessions.get("setup_latency_us", {})
        version = section.get("negotiated_protocol_version") or "?"
        server = section.get("server") or {}
        chosen_by = section.get("protocol_chosen_by")
        parts = [
            f"{transport}: protocol {version}" + (f" (by {chosen_by})" if chosen_by else ""),
            f"sessions {sessions.get('opened', 0)} opened, {sessions.get('failed', 0)} failed",
        ]
        for op, why in (section.get("skipped_ops") or {}).items():
            parts.append(f"{op} not sent ({why})")
        if setup.get("p50") is not None and sessions.get("opened"):
            parts.append(f"set-up p50 {format_latency_us(setup['p50'])}")
        if server.get("rss_peak_bytes"):
            parts.append(
                f"server RSS peak {server['rss_peak_bytes'] / 2**20:.0f} MiB, CPU {server.get('cpu_s', 0):.1f}s"
            )
        generator = section.get("generator") or {}
        if generator.get("cpu_s") is not None:
            workers = generator.get("workers") or 1
            spread = f" in {workers} processes" if workers > 1 else ""
            parts.append(f"generator CPU {generator['cpu_s']:.1f}s{spread}")
        client = section.get("client") or {}
        if client.get("cpu_per_call_us") is not None:
            who = f"SDK client (mcp {client.get('mcp')})" if client.get("kind") == "sdk" else "client"
            parts.append(f"{who} CPU {format_latency_us(client['cpu_per_call_us'])}/call")
        lines.append(style.dim(" | ".join(parts)))
    for transport, section in transports.items():
        lines.extend(health_lines(transport, section, style))
    for transport, section in transports.items():
        lines.extend(_generator_lines(transport, section.get("generator") or {}, style))
    for transport, section in transports.items():
        client = section.get("client") or {}
        if client.get("saturated"):
            lines.append(
                style.red(
                    f"note: on {transport} the mcp {client.get('mcp')} SDK client kept its worker process"
                    f"{'es' if client.get('workers', 1) != 1 else ''} {client.get('cpu_busy', 0):.0%} busy: "
                    "it, not the server, may be what limits the rate (more with --client-workers)"
                )
            )
    lines.extend(_error_block(transports, style))
    lines.extend(_silent_block(transports, style))
    thresholds = run.get("thresholds") or []
    if thresholds:
        lines.append("")
        lines.append(style.bold("thresholds"))
        for item in thresholds:
            mark = style.green("pass") if item.get("passed") else style.red("FAIL")
            lines.append(f"  {mark}  {threshold_line(item)}")
    lines.append("")
    lines.append(totals_line(run.get("totals") or {}, style))
    return "\n".join(lines)


def threshold_line(item: Mapping[str, Any]) -> str:
    """``p99 < 1s  measured 12.3 (worst: http/echo)``; ``no data`` when nothing was measured."""
    value = item.get("value")
    reason = str(item.get("reason") or "")
    if value is None and reason.startswith("no data"):
        return f"{item.get('expr')}  {reason}"
    measured = "no data" if value is None else f"measured {_value(value)}"
    where = f" (worst: {item['scope']})" if item.get("scope") else ""
    return f"{item.get('expr')}  {measured}{where}" + (f" — {reason}" if reason else "")


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.2%}" if whole else "-"


def totals_line(totals: Mapping[str, Any], style: Style) -> str:
    """The run in one line, in the thresholds' words: errors (loud), silent failures, both.

    Unattributed failures (answers no request was waiting for) are in ``totals`` already; a
    rate over zero calls is ``-``, never ``0%``.
    """
    calls = int(totals.get("calls", 0))
    errors = int(totals.get("errors", 0))
    silent = int(totals.get("silent_failures", 0))
    text = (
        f"{calls} calls, {errors} errors (error_rate {_percent(errors, calls)}), "
        f"{silent} silent failures (silent_rate {_percent(silent, calls)}), "
        f"failure_rate {_percent(errors + silent, calls)}"
    )
    if not calls:
        return style.red(text + ": nothing was measured")
    return (style.red if silent else style.green)(text)


def _under_test(meta: Mapping[str, Any]) -> str | None:
    """Which side of the wire the run measured, in one line (runs that record ``meta.client``)."""
    client = meta.get("client")
    if not isinstance(client, Mapping):
        return None
    target = meta.get("target") or {}
    sdk = target.get("sdk") or {}
    server = {
        "reference": "the reference server",
        "command": "the server command",
        "url": str(target.get("url")),
    }.get(str(target.get("kind")), "the target")
    if sdk.get("version"):
        server += f" on {sdk.get('name') or 'mcp'} {sdk['version']}"
    elif target.get("sdk_source") == "unknown":
        # Never the tester's own mcp: say what the server said it is instead.
        info = target.get("server_info") or {}
        named = " ".join(str(info[k]) for k in ("name", "version") if info.get(k))
        server += f" (SDK unknown; serverInfo: {named})" if named else " (SDK unknown; no serverInfo)"
    if client.get("kind") != "sdk":
        return f"under test: {server}; calls made by the built-in wire-level client"
    workers = client.get("workers", 1)
    return (
        f"under test: the mcp {client.get('mcp')} SDK client (ClientSession, {workers} worker process"
        f"{'es' if workers != 1 else ''}) with {server}"
    )


def _error_block(transports: Mapping[str, Any], style: Style) -> list[str]:
    """The first loud error of each kind, where one was kept: its message often says it all."""
    lines: list[str] = []
    for transport, section in transports.items():
        for op, stats in section.get("ops", {}).items():
            for kind, examples in (stats.get("error_examples") or {}).items():
                if examples:
                    count = stats.get("errors", {}).get(kind, 0)
                    lines.append(
                        f"errors {transport}/{op}: {kind} {count}, first: {examples[0].get('detail', examples[0])}"
                    )
    if lines:
        lines.insert(0, "")
    return lines


def _mb(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f} MB" if sign else f"{value:.1f} MB"


def _one_line(detail: Any) -> str:
    """An event's detail on one line: a process's exit keeps the last line of its stderr."""
    text = str(detail or "").strip().splitlines()
    if not text:
        return ""
    head = text[0].removesuffix("; its stderr ends with:")
    return head if len(text) == 1 else f"{head}; stderr: {text[-1].strip()}"


def health_lines(transport: str, section: Mapping[str, Any], style: Style) -> list[str]:
    """The target's health on ``transport``: verdict and figures, crashes and hangs with times."""
    health = (section.get("server") or {}).get("health")
    lines: list[str] = []
    if health:
        verdict = str(health.get("verdict", "unknown"))
        head = f"{transport}: server memory {verdict}"
        if health.get("reason"):
            head += f": {health['reason']}"
        lines.append(style.red(head) if verdict == "growing" else style.dim(head))
        figures = []
        if health.get("rss_slope_mb_per_h") is not None:
            figures.append(
                f"RSS {health['rss_slope_mb_per_h']:+.1f} MB/h after {health.get('warmup_s', 0):g}s warm-up"
            )
        if health.get("rss_per_1k_sessions_mb") is not None:
            figures.append(
                f"{health['rss_per_1k_sessions_mb']:+.2f} MB per 1k sessions ({health.get('sessions_in_window')} sessions)"
            )
        fds, threads = health.get("fds") or {}, health.get("threads") or {}
        if fds.get("start") is not None:
            figures.append(f"fds {fds['start']}->{fds['end']} (peak {fds['peak']})")
        if threads.get("start") is not None:
            figures.append(f"threads {threads['start']}->{threads['end']} (peak {threads['peak']})")
        idle = health.get("idle") or {}
        if idle.get("rss_after_bytes") is not None:
            figures.append(
                f"after {idle['duration_s']:.0f}s idle: RSS {_mb(-idle['released_bytes'] / 2**20, sign=True)},"
                f" fds {idle.get('fds_before')}->{idle.get('fds_after')}"
            )
        if figures:
            lines.append(style.dim("    " + " | ".join(figures)))
        failures = {k: int(health.get(k) or 0) for k in ("crashes", "hangs", "restart_failures")}
        if any(failures.values()) or health.get("restarts"):
            counts = f"crashed {failures['crashes']}x, hung {failures['hangs']}x, restarted {health.get('restarts', 0)}x"
            if failures["restart_failures"]:
                counts += f", failed to restart {failures['restart_failures']}x"
            lines.append(style.red(f"{transport}: the target {counts}"))
            for event in (health.get("events") or [])[:6]:
                at = str(event.get("at", ""))[:19].replace("T", " ")
                lines.append(
                    f"    +{float(event.get('t', 0)):.0f}s ({at} UTC) {event.get('event')}: {_one_line(event.get('detail'))}"
                )
    generator = section.get("generator") or {}
    if generator.get("rss_start_bytes") is not None:
        lines.append(
            style.dim(
                f"{transport}: generator RSS {generator['rss_start_bytes'] / 2**20:.1f} -> "
                f"{generator['rss_end_bytes'] / 2**20:.1f} MiB (peak {generator['rss_peak_bytes'] / 2**20:.1f})"
            )
        )
    if section.get("error"):
        lines.append(style.red(f"{transport}: {section['error']}"))
    return lines


def _silent_block(transports: Mapping[str, Any], style: Style) -> list[str]:
    lines: list[str] = []
    for transport, section in transports.items():
        for op, stats in section.get("ops", {}).items():
            silent = {k: v for k, v in stats.get("silent", {}).items() if v}
            if not silent:
                continue
            kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(silent.items()))
            lines.append(style.red(f"SILENT FAILURES {transport}/{op}: {kinds}"))
            for kind, examples in stats.get("silent_examples", {}).items():
                for example in examples[:2]:
                    lines.append(f"    {kind}: {example.get('detail', example)}")
    if lines:
        lines.insert(0, "")
    return lines


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
