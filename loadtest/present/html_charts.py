"""The plots of the HTML reports: percentile distributions on the HdrHistogram "nines" axis,
and latency and throughput per second from the interval logs."""

from __future__ import annotations

import math
from collections.abc import Sequence

from hdrh.histogram import HdrHistogram

from loadtest.analysis.compare.intervals import percentile_of_buckets
from loadtest.analysis.compare.model import Run
from loadtest.analysis.compare.stats import Bucketed
from loadtest.core.units import format_latency_us
from loadtest.present.html_page import NINES_MAX, SideView
from loadtest.present.svg import Series, line_chart


def sorted_counts(encoded: Sequence[str]) -> list[tuple[float, int]]:
    """Merged (value, count) pairs of HdrHistograms given as base64 strings."""
    merged: dict[float, int] = {}
    for text in encoded:
        try:
            hist = HdrHistogram.decode(text)
        except Exception:  # a damaged histogram leaves a gap in a plot, not a crash
            continue
        if not hist.get_total_count():
            continue
        limit = hist.get_counts_array_index(hist.get_max_value()) + 1
        for index, count in enumerate(hist.counts[:limit]):
            if count:
                value = float(hist.get_highest_equivalent_value(hist.get_value_from_index(index)))
                merged[value] = merged.get(value, 0) + count
    return sorted(merged.items())


def nines_points(pairs: Sequence[tuple[float, int]]) -> list[tuple[float, float]]:
    total = sum(c for _, c in pairs)
    if total == 0:
        return []
    x_max = min(NINES_MAX, math.log10(total)) if total > 1 else 0.0
    xs = [i * 0.05 for i in range(int(x_max / 0.05) + 1)]
    points: list[tuple[float, float]] = []
    seen, i = 0, 0
    for x in xs:
        target = max(1, math.ceil((1 - 10**-x) * total))
        while i < len(pairs) and seen + pairs[i][1] < target:
            seen += pairs[i][1]
            i += 1
        points.append((x, pairs[min(i, len(pairs) - 1)][0]))
    points.append((x_max + 0.05 if total > 1 else 0.05, pairs[-1][0]))  # the maximum, at the right end
    return points


NINES_TICKS = [(0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%"), (5.0, "99.999%")]


def percentile_charts(sides: Sequence[SideView], keys: Sequence[tuple[str, str]]) -> list[str]:
    charts = []
    for transport, op in keys:
        series = []
        for side in sides:
            encoded = [
                str(stats["hdr"])
                for run in side.runs
                if (stats := ((run.transports.get(transport) or {}).get("ops") or {}).get(op))
                and stats.get("hdr")
            ]
            points = nines_points(sorted_counts(encoded))
            series.append(
                Series(
                    f"{side.name} ({len(encoded)} run{'s' if len(encoded) != 1 else ''})", side.colour, points
                )
            )
        top = max((x for s in series for x, _ in s.points), default=0.0)
        ticks = [t for t in NINES_TICKS if t[0] <= max(top, 1.0)]
        charts.append(
            line_chart(
                f"{transport}/{op}: latency by percentile",
                series,
                x_label="percentile (corrected latency; right end: max)",
                y_label="latency",
                log_y=True,
                y_format=format_latency_us,
                x_ticks=ticks,
            )
        )
    return charts


def per_second(run: Run, transport: str) -> list[tuple[float, float, float, float]]:
    """(t, calls/s, p50, p99) per interval, all ops merged."""
    by_start: dict[float, list[Bucketed]] = {}
    for intervals in run.intervals(transport).values():
        for interval in intervals:
            by_start.setdefault(round(interval.start_s, 1), []).append(interval)
    out = []
    for start in sorted(by_start):
        group = by_start[start]
        merged: dict[int, int] = {}
        count = 0
        for interval in group:
            count += interval.count
            for bucket, c in interval.buckets:
                merged[bucket] = merged.get(bucket, 0) + c
        length = max(i.length_s for i in group)
        p50, p99 = percentile_of_buckets(merged, count, [0.5, 0.99])
        out.append((start + length, count / length, p50, p99))
    return out


def time_charts(sides: Sequence[SideView], transports: Sequence[str]) -> list[str]:
    charts = []
    for transport in transports:
        latency: list[Series] = []
        rate: list[Series] = []
        memory: list[Series] = []
        for side in sides:
            for n, run in enumerate(side.runs):
                first = n == 0
                rows = per_second(run, transport)
                latency.append(
                    Series(f"{side.name} p99", side.colour, [(t, p99) for t, _, _, p99 in rows], legend=first)
                )
                latency.append(
                    Series(
                        f"{side.name} p50",
                        side.colour,
                        [(t, p50) for t, _, p50, _ in rows],
                        dashed=True,
                        legend=first,
                    )
                )
                rate.append(Series(side.name, side.colour, [(t, r) for t, r, _, _ in rows], legend=first))
                server = (run.transports.get(transport) or {}).get("server") or {}
                # Seconds from the start of measurement, as the latency plots (warm-up < 0).
                shift = float((server.get("health") or {}).get("measure_start_s") or 0.0)
                samples = server.get("samples") or []
                memory.append(
                    Series(
                        side.name,
                        side.colour,
                        [
                            (float(s[0]) - shift, float(s[1]) / 2**20)
                            for s in samples
                            if len(s) > 1 and s[1] is not None
                        ],
                        legend=first,
                    )
                )
        charts.append(
            line_chart(
                f"{transport}: latency per second (all ops)",
                latency,
                x_label="seconds",
                y_label="latency",
                log_y=True,
                y_format=format_latency_us,
            )
        )
        charts.append(
            line_chart(f"{transport}: throughput", rate, x_label="seconds", y_label="calls/s", y_zero=True)
        )
        charts.append(
            line_chart(
                f"{transport}: server memory (RSS)",
                memory,
                x_label="seconds",
                y_label="MiB",
                y_format=lambda v: f"{v:g}",
            )
        )
    return charts


def chart_keys(runs: Sequence[Run]) -> tuple[list[str], list[tuple[str, str]]]:
    transports: dict[str, None] = {}
    keys: dict[tuple[str, str], None] = {}
    for run in runs:
        for transport, section in run.transports.items():
            transports[transport] = None
            for op in section.get("ops") or {}:
                keys[(transport, op)] = None
    return list(transports), list(keys)
