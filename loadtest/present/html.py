"""One self-contained HTML file: tables and inline-SVG plots, no network, no library.

For a comparison: percentile-distribution curves (the HdrHistogram "nines" axis, log latency)
overlaying A and B per transport x op, latency and throughput per second, server memory over
time, then the tables. For a single run (``mcp-loadtest report RUN --html F``) the same plots
with one side, and the server's health where it was watched: the verdict and its figures,
crashes and restarts, memory against sessions opened, descriptors and threads, and the
generator's own memory. A few lines of inline script only mark the page ready (``document.title``) and
let the reader fold the unchanged rows away; the page reads the same without them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from loadtest.analysis.compare.health import HEALTH_OP
from loadtest.analysis.compare.model import Run, Side, split_target
from loadtest.analysis.compare.verdicts import (
    IMPROVED,
    INCONCLUSIVE,
    NOT_COMPARABLE,
    NOT_ENOUGH,
    REGRESSED,
    Comparison,
)
from loadtest.core.units import format_latency_us
from loadtest.present.format import (
    METHODS_NOTE,
    fmt_ci,
    fmt_p,
    fmt_ratio,
    fmt_value,
    fmt_verdict,
    settings_line,
    side_summary,
)
from loadtest.present.html_charts import (
    NINES_TICKS,
    chart_keys,
    nines_points,
    percentile_charts,
    sorted_counts,
    time_charts,
)
from loadtest.present.html_page import COLOURS, OP_COLOURS, SideView, page, write_html
from loadtest.present.svg import Series, line_chart
from loadtest.present.terminal import Style, summary_rows, threshold_line, totals_line
from loadtest.present.wire_diffs import by_cause

__all__ = ["render_html_comparison", "render_html_run", "write_html"]


def _row_class(verdict: str, gated: bool) -> str:
    if verdict in (NOT_ENOUGH, NOT_COMPARABLE):
        return "nodata"
    if not gated:
        return "unchanged"
    return {REGRESSED: "regressed", IMPROVED: "improved", INCONCLUSIVE: "inconclusive"}.get(
        verdict, "unchanged"
    )


def _metrics_table(comparison: Comparison, rows: Sequence[Any], table_id: str = "") -> str:
    head = "".join(
        f'<th class="{"l" if i in (0, 1, 8) else ""}">{escape(h)}</th>'
        for i, h in enumerate(("transport/op", "metric", "A", "B", "B/A", "95% CI", "p", "", "verdict"))
    )
    id_attr = f' id="{table_id}"' if table_id else ""
    out = [f"<table{id_attr}><thead><tr>{head}</tr></thead><tbody>"]
    for row in rows:
        cells = [
            f'<td class="l">{escape(row.transport)}/{escape(row.op)}</td>',
            f'<td class="l">{escape(row.metric.label)}</td>',
            f"<td>{escape(fmt_value(row.metric, row.a))}</td>",
            f"<td>{escape(fmt_value(row.metric, row.b))}</td>",
            f"<td>{escape(fmt_ratio(row))}</td>",
            f"<td>{escape(fmt_ci(row))}</td>",
            f"<td>{escape(fmt_p(row.p))}</td>",
            "<td></td>",
            f'<td class="l">{escape(fmt_verdict(row))}{(" <span class=muted>— " + escape(row.note) + "</span>") if row.note else ""}</td>',
        ]
        out.append(f'<tr class="{_row_class(row.verdict, row.metric.gated)}">{"".join(cells)}</tr>')
    out.append("</tbody></table>")
    return "".join(out)


def render_html_comparison(comparison: Comparison) -> str:
    """The comparison report as one HTML document."""
    c = comparison
    sides = [SideView("A", COLOURS[0], c.a.runs), SideView("B", COLOURS[1], c.b.runs)]
    transports, keys = chart_keys([*c.a.runs, *c.b.runs])
    body = [
        "<h1>mcp-loadtest compare</h1>",
        f'<p><span class="headline {"bad" if c.regressed else "good"}">{escape(c.headline())}</span></p>',
        "<ul>",
        f'<li><b style="color:{COLOURS[0]}">A</b>: {escape(side_summary(c.a.label, len(c.a.runs), c.a.sdks, c.a.clients))}</li>',
        f'<li><b style="color:{COLOURS[1]}">B</b>: {escape(side_summary(c.b.label, len(c.b.runs), c.b.sdks, c.b.clients))}</li>',
        *(f"<li><b>target differs</b>: {escape(t)}</li>" for t in split_target(c.warnings)[0]),
        f"<li>{escape(settings_line(c))}</li>",
        "</ul>",
    ]
    if c.new_silent:
        body.append('<div class="silent"><b>New silent failures in B</b><ul>')
        for item in c.new_silent:
            body.append(
                f"<li>{escape(str(item))}"
                + "".join(f"<br><code>{escape(e)}</code>" for e in item.examples)
                + "</li>"
            )
        body.append("</ul></div>")
    order = {REGRESSED: 0, IMPROVED: 1, INCONCLUSIVE: 2, NOT_COMPARABLE: 3}
    flagged = [row for row in c.rows if row.verdict in order and row.metric.gated]
    flagged.sort(key=lambda row: order[row.verdict])
    body.append("<h2>Verdicts</h2>")
    body.append(
        _metrics_table(c, flagged)
        if flagged
        else f"<p>No metric changed by {c.min_effect:.0%} or more with significance.</p>"
    )
    health = [row for row in c.rows if row.op == HEALTH_OP]
    if health:
        body.append("<h2>Server health</h2>")
        body.append(
            '<p class="muted">Per transport, from the launched server\'s health in each run '
            "(B − A for figures; figures only from runs with enough data).</p>"
        )
        body.append(_metrics_table(c, health))
    if c.check_diffs or c.checks_note:
        body.append("<h2>Wire-behaviour differences (conformance checks)</h2>")
        if c.check_diffs:
            body.append(
                '<table><thead><tr><th class="l">check</th><th class="l">status A → B</th><th class="l">observed A → B</th></tr></thead><tbody>'
            )
            causes, single = by_cause(c.check_diffs)
            for group in causes:
                body.append(
                    f'<tr><td class="l">{len(group.ids)} checks</td><td class="l">unchanged</td>'
                    f'<td class="l">{escape(group.cause)}: {escape(", ".join(group.ids))}</td></tr>'
                )
            for diff in single:
                status = " → ".join(str(s) for s in diff["status"])
                observed = " → ".join(str(o) if o is not None else "(absent)" for o in diff["observed"])
                body.append(
                    f'<tr><td class="l"><code>{escape(diff["id"])}</code></td><td class="l">{escape(status)}</td><td class="l">{escape(observed)}</td></tr>'
                )
            body.append("</tbody></table>")
        else:
            body.append(f"<p class=muted>{escape(c.checks_note)}.</p>")
    body.append("<h2>Latency distribution</h2>")
    body.append('<div class="charts">' + "".join(percentile_charts(sides, keys)) + "</div>")
    body.append("<h2>Over time</h2>")
    body.append('<p class="muted">One line per run; solid p99, dashed p50.</p>')
    body.append('<div class="charts">' + "".join(time_charts(sides, transports)) + "</div>")
    body.append("<h2>All metrics</h2>")
    body.append(
        '<label><input type="checkbox" id="only-flagged"> show only regressions, improvements</label>'
    )
    body.append(_metrics_table(c, c.rows, "all-metrics"))
    warnings = split_target(c.warnings)[1]
    if warnings:
        body.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>")
    body.append(f'<p class="muted">{escape(METHODS_NOTE)}</p>')
    return page("mcp-loadtest compare", body)


def _run_table(document: Mapping[str, Any]) -> str:
    heads = ("transport", "op", "calls", "rate/s", "p50", "p90", "p99", "p99.9", "max", "errors", "silent")
    out = [
        "<table><thead><tr>"
        + "".join(f'<th class="{"l" if i < 2 else ""}">{h}</th>' for i, h in enumerate(heads))
        + "</tr></thead><tbody>"
    ]
    for row in summary_rows(document.get("transports") or {}):
        bad = row[-1] != "0"
        out.append(
            f'<tr class="{"regressed" if bad else ""}">'
            + "".join(f'<td class="{"l" if i < 2 else ""}">{escape(cell)}</td>' for i, cell in enumerate(row))
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def render_html_run(run: Run) -> str:
    """A single run's report: its table, percentile curves (one colour per op) and time plots."""
    document = run.document
    meta = document.get("meta") or {}
    transports, keys = chart_keys([run])
    body = [
        f"<h1>mcp-loadtest run: {escape(str((document.get('scenario') or {}).get('name', run.name)))}</h1>",
        f"<p class=muted>{escape(str(run.path))} · started {escape(str(meta.get('started', '?')))} · "
        f"{escape(run.sdk or 'unknown SDK')} · {escape(str(meta.get('cpu_model', '?')))}, {escape(str(meta.get('cores', '?')))} cores</p>",
    ]
    if document.get("partial"):
        body.append(f'<p class="silent">Partial run: {escape(str(document["partial"]))}.</p>')
    totals = document.get("totals") or {}
    silent = totals.get("silent_failures", 0)
    body.append(
        f'<p><span class="headline {"bad" if silent or totals.get("errors") else "good"}">'
        f"{escape(totals_line(totals, Style(colour=False)))}</span></p>"
    )
    body.append(_run_table(document))
    thresholds = document.get("thresholds") or []
    if thresholds:
        body.append("<h2>Thresholds</h2><ul>")
        for item in thresholds:
            mark = "pass" if item.get("passed") else "<b style='color:#cf222e'>FAIL</b>"
            body.append(
                f"<li>{mark} <code>{escape(str(item.get('expr')))}</code> "
                f"{escape(threshold_line(item)[len(str(item.get('expr'))) :].strip())}</li>"
            )
        body.append("</ul>")
    body.append("<h2>Latency distribution</h2>")
    charts = []
    for transport in transports:
        series = []
        for n, (t, op) in enumerate(k for k in keys if k[0] == transport):
            stats = (run.transports.get(t) or {}).get("ops", {}).get(op) or {}
            points = nines_points(sorted_counts([str(stats["hdr"])] if stats.get("hdr") else []))
            series.append(Series(op, OP_COLOURS[n % len(OP_COLOURS)], points))
        charts.append(
            line_chart(
                f"{transport}: latency by percentile",
                series,
                x_label="percentile (corrected latency; right end: max)",
                y_label="latency",
                log_y=True,
                y_format=format_latency_us,
                x_ticks=NINES_TICKS,
            )
        )
    body.append('<div class="charts">' + "".join(charts) + "</div>")
    body.append("<h2>Over time</h2>")
    body.append(
        '<div class="charts">'
        + "".join(time_charts([SideView("run", COLOURS[0], [run])], transports))
        + "</div>"
    )
    body.extend(_health_html(run, transports))
    checks = document.get("checks") or []
    if checks:
        body.append(
            "<h2>Conformance checks</h2><table><thead><tr><th class=l>check</th><th class=l>status</th><th class=l>observed</th></tr></thead><tbody>"
        )
        for check in checks:
            observed = (check.get("details") or {}).get("observed", "")
            body.append(
                f"<tr><td class=l><code>{escape(str(check.get('id')))}</code></td><td class=l>{escape(str(check.get('status')))}</td><td class=l>{escape(str(observed))}</td></tr>"
            )
        body.append("</tbody></table>")
    return page(f"mcp-loadtest run {run.name}", body)


def _health_rows(health: Mapping[str, Any]) -> list[tuple[str, str]]:
    fds, threads, idle = health.get("fds") or {}, health.get("threads") or {}, health.get("idle") or {}

    def num(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    evidence = health.get("evidence") or {}
    slope_needs = (evidence.get("rss_slope") or {}).get("needs_window_s")
    sessions_needs = (evidence.get("rss_per_1k_sessions") or {}).get("needs_sessions")
    slope = (
        f"{num(health.get('rss_slope_mb_per_h'), '+.2f')} MB/h"
        if health.get("rss_slope_mb_per_h") is not None or not slope_needs
        else f"no figure (needs a {slope_needs:g}s window)"
    )
    per_1k = (
        f"{num(health.get('rss_per_1k_sessions_mb'), '+.3f')} MB"
        if health.get("rss_per_1k_sessions_mb") is not None or not sessions_needs
        else f"no figure (needs {sessions_needs} sessions)"
    )
    rows = [
        ("verdict", f"{health.get('verdict', 'unknown')}: {health.get('reason', '')}"),
        (
            "RSS slope after warm-up",
            f"{slope} (warm-up {num(health.get('warmup_s'), 'g')}s, window {num(health.get('window_s'), 'g')}s)",
        ),
        (
            "RSS per 1000 sessions",
            f"{per_1k} over {num(health.get('sessions_in_window'), 'd')} sessions; released: {health.get('sessions_released')}",
        ),
        (
            "open descriptors",
            f"{fds.get('start')} → {fds.get('end')} (peak {fds.get('peak')}; {num(fds.get('per_1k_sessions'), '+g')} per 1000 sessions)",
        ),
        ("threads", f"{threads.get('start')} → {threads.get('end')} (peak {threads.get('peak')})"),
        (
            "crashes, hangs, restarts",
            f"{health.get('crashes', 0)}, {health.get('hangs', 0)}, {health.get('restarts', 0)}",
        ),
    ]
    if idle.get("rss_after_bytes") is not None:
        rows.append(
            (
                "after the idle period",
                f"{idle['duration_s']:g}s: RSS {-idle['released_bytes'] / 2**20:+.2f} MB, descriptors {idle.get('fds_before')} → {idle.get('fds_after')}",
            )
        )
    return rows


def _health_html(run: Run, transports: Sequence[str]) -> list[str]:
    """Server health per transport: figures, events, and memory against sessions, descriptors, threads."""
    sections = {t: (run.transports.get(t) or {}) for t in transports}
    if not any((s.get("server") or {}).get("health") for s in sections.values()):
        return []
    body = ["<h2>Server health</h2>"]
    charts = []
    for transport, section in sections.items():
        server = section.get("server") or {}
        health = server.get("health")
        if not health:
            continue
        body.append(f'<h3>{escape(transport)}</h3><table class="wrap"><tbody>')
        body.extend(
            f'<tr><th class="l">{escape(k)}</th><td class="l">{escape(v)}</td></tr>'
            for k, v in _health_rows(health)
        )
        body.append("</tbody></table>")
        events = health.get("events") or []
        if events:
            body.append(
                '<table class="wrap"><thead><tr><th>+s</th><th class="l">UTC</th><th class="l">event</th><th class="l">detail</th></tr></thead><tbody>'
            )
            for event in events:
                body.append(
                    f"<tr><td>{float(event.get('t', 0)):.0f}</td><td class=l>{escape(str(event.get('at', '')))}</td>"
                    f"<td class=l>{escape(str(event.get('event')))}</td><td class=l><code>{escape(str(event.get('detail', '')))}</code></td></tr>"
                )
            body.append("</tbody></table>")
        samples = server.get("samples") or []
        sessions = server.get("sample_sessions") or []
        shift = float(health.get("measure_start_s") or 0.0)
        by_session = [
            (float(n), float(row[1]) / 2**20)
            for row, n in zip(samples, sessions, strict=False)
            if n is not None and row[1] is not None
        ]
        if by_session and transport != "stdio":
            charts.append(
                line_chart(
                    f"{transport}: server memory against sessions opened",
                    [Series("RSS", COLOURS[0], by_session)],
                    x_label="sessions opened",
                    y_label="MiB",
                    y_format=lambda v: f"{v:g}",
                )
            )
        fds = [
            (float(row[0]) - shift, float(row[3])) for row in samples if len(row) > 4 and row[3] is not None
        ]
        threads = [
            (float(row[0]) - shift, float(row[4])) for row in samples if len(row) > 4 and row[4] is not None
        ]
        charts.append(
            line_chart(
                f"{transport}: server descriptors and threads",
                [Series("open descriptors", COLOURS[0], fds), Series("threads", COLOURS[1], threads)],
                x_label="seconds",
                y_label="count",
                y_zero=True,
            )
        )
        generator = (section.get("generator") or {}).get("rss_samples") or []
        charts.append(
            line_chart(
                f"{transport}: generator memory (RSS)",
                [
                    Series(
                        "generator",
                        COLOURS[0],
                        [(float(t) - shift, float(rss) / 2**20) for t, rss in generator],
                    )
                ],
                x_label="seconds",
                y_label="MiB",
                y_format=lambda v: f"{v:g}",
            )
        )
    body.append('<div class="charts">' + "".join(charts) + "</div>")
    return body


def side_label(side: Side) -> str:
    return side_summary(side.label, len(side.runs), side.sdks, side.clients)
