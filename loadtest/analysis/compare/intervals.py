"""Per-second interval histograms from a run's ``<transport>.hlog``, in a compact form.

Each interval's latencies are re-binned into 1%-wide logarithmic buckets: fine enough for a
5% minimum effect, and small enough (tens of buckets a second) that a bootstrap can merge
thousands of resamples in pure Python.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from hdrh.histogram import HdrHistogram

from loadtest.analysis.compare.stats import Bucketed
from loadtest.measure.hlog import UNCORRECTED_SUFFIX, read_hlog

__all__ = ["UNCORRECTED_SUFFIX", "bucket_of", "bucket_value", "percentile_of_buckets", "read_intervals"]

_STEP = math.log(1.01)


def bucket_of(value_us: float) -> int:
    """The 1% log bucket of a latency in microseconds."""
    return int(math.log(max(value_us, 1.0)) / _STEP)


def bucket_value(bucket: int) -> float:
    """The middle of a bucket, in microseconds."""
    return math.exp((bucket + 0.5) * _STEP)


def percentile_of_buckets(merged: Mapping[int, int], total: int, quantiles: Iterable[float]) -> list[float]:
    """Values at ``quantiles`` (0..1, ascending) of a merged bucket histogram; NaN when empty."""
    qs = list(quantiles)
    if total <= 0:
        return [math.nan] * len(qs)
    out: list[float] = []
    targets = [max(1, math.ceil(q * total)) for q in qs]
    seen = 0
    t = 0
    for bucket in sorted(merged):
        seen += merged[bucket]
        while t < len(targets) and seen >= targets[t]:
            out.append(bucket_value(bucket))
            t += 1
        if t == len(targets):
            break
    while len(out) < len(qs):
        out.append(bucket_value(max(merged)))
    return out


def _buckets(histogram: HdrHistogram, cache: dict[int, int]) -> tuple[tuple[int, int], ...]:
    limit = (
        histogram.get_counts_array_index(histogram.get_max_value()) + 1 if histogram.get_total_count() else 0
    )
    counts = histogram.counts[:limit]
    merged: dict[int, int] = {}
    for index, count in enumerate(counts):
        if count:
            bucket = cache.get(index)
            if bucket is None:
                bucket = cache[index] = bucket_of(histogram.get_value_from_index(index))
            merged[bucket] = merged.get(bucket, 0) + count
    return tuple(sorted(merged.items()))


def read_intervals(path: Path, *, uncorrected: bool = False) -> dict[str, list[Bucketed]]:
    """Intervals per op tag (corrected latencies unless ``uncorrected``); {} if no log.

    Start times are seconds from the first interval in the file.
    """
    out: dict[str, list[Bucketed]] = {}
    cache: dict[int, int] = {}
    first: float | None = None
    for interval in read_hlog(path):
        if interval.uncorrected != uncorrected:
            continue
        if first is None:
            first = interval.start_s
        out.setdefault(interval.op, []).append(
            Bucketed(
                start_s=interval.start_s - first,
                length_s=max(interval.end_s - interval.start_s, 1e-3),
                count=interval.histogram.get_total_count(),
                buckets=_buckets(interval.histogram, cache),
            )
        )
    return out
