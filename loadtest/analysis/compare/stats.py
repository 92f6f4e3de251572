"""The statistics behind ``compare``, in pure Python (no numpy/scipy: the inputs are small).

- :func:`mann_whitney_u`: the rank test over per-run values (exact for small samples,
  normal approximation with tie correction otherwise).
- :func:`welch`: Welch's t over per-run values (their logarithms), whose p-value is not floored
  by the number of runs, and :func:`benjamini_hochberg` to control a report's many figures.
- :func:`fisher_exact`: two-sided exact test on a 2x2 table of counts (errors, silent failures).
- :func:`bootstrap_runs`: percentile bootstrap over runs, resampling each side's runs.
- :func:`block_bootstrap`: circular block bootstrap over a run's per-second intervals, nested
  inside a resampling of runs (a hierarchical bootstrap) when a side has few runs.

Every random draw comes from a :class:`random.Random` seeded by the caller, and only
``random()`` is used, whose sequence Python keeps stable, so reports are reproducible.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Bucketed",
    "Welch",
    "benjamini_hochberg",
    "block_bootstrap",
    "bootstrap_runs",
    "fisher_exact",
    "mann_whitney_u",
    "median",
    "min_rank_p",
    "normal_quantile",
    "quantile",
    "ratio_ci_katz",
    "t_quantile",
    "t_two_sided_p",
    "welch",
]

#: Below this many orderings the Mann-Whitney p-value is computed by full enumeration.
_EXACT_ORDERINGS = 20_000


def median(values: Sequence[float]) -> float:
    """The median (mean of the middle two for an even count)."""
    s = sorted(values)
    n = len(s)
    if n == 0:
        raise ValueError("median of nothing")
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of already sorted values (``q`` in [0, 1])."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("quantile of nothing")
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _ranks(values: Sequence[float]) -> list[float]:
    """Mid-ranks (1-based): tied values share the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def min_rank_p(n1: int, n2: int) -> float:
    """The smallest two-sided p-value a rank test can give with samples of n1 and n2.

    3 runs against 3 can never do better than 0.1: a side that small cannot carry a rank-test
    verdict at the 5% level, whatever the data.
    """
    if n1 == 0 or n2 == 0:
        return 1.0
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def _u_distribution(n1: int, n2: int) -> list[int]:
    """Number of orderings giving each U = 0..n1*n2 when there are no ties."""
    # f[i][j][u]: orderings of i values from x and j from y with U = u; built row by row.
    prev = [[1] + [0] * (n1 * n2) for _ in range(n2 + 1)]  # i = 0: U is 0
    for _ in range(1, n1 + 1):
        cur = [[0] * (n1 * n2 + 1) for _ in range(n2 + 1)]
        cur[0][0] = 1
        for j in range(1, n2 + 1):
            # The largest of the i + j values is either an x (it beats all j y's) or a y.
            a, b, row = prev[j], cur[j - 1], cur[j]
            for u in range(n1 * n2 + 1):
                row[u] = (a[u - j] if u >= j else 0) + b[u]
        prev = cur
    return prev[n2]


def mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Mann-Whitney U of ``x`` against ``y`` and its two-sided p-value.

    U counts the pairs (xi, yj) with xi > yj (ties count one half). Exact when the number of
    orderings is small (by the U distribution without ties, by enumerating the mid-rank sums
    with them); normal approximation with tie and continuity correction otherwise.
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = [*x, *y]
    ranks = _ranks(pooled)
    r1 = sum(ranks[:n1])
    u = r1 - n1 * (n1 + 1) / 2
    mean_u = n1 * n2 / 2
    ties = len(set(pooled)) < len(pooled)
    orderings = math.comb(n1 + n2, n1)
    if orderings <= _EXACT_ORDERINGS:
        if not ties:
            counts = _u_distribution(n1, n2)
            k = min(u, n1 * n2 - u)
            tail = sum(counts[: round(k) + 1])
            return u, min(1.0, 2 * tail / orderings)
        # With ties, enumerate every split of the pooled mid-ranks.
        observed = abs(u - mean_u)
        extreme = 0
        offset = n1 * (n1 + 1) / 2
        for combo in itertools.combinations(ranks, n1):
            if abs(sum(combo) - offset - mean_u) >= observed - 1e-9:
                extreme += 1
        return u, min(1.0, extreme / orderings)
    n = n1 + n2
    counts_by_value: dict[float, int] = {}
    for v in pooled:
        counts_by_value[v] = counts_by_value.get(v, 0) + 1
    tie_term = sum(t**3 - t for t in counts_by_value.values())
    var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if var <= 0:
        return u, 1.0
    z = (abs(u - mean_u) - 0.5) / math.sqrt(var)
    return u, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))


def _log_hypergeom(k: int, row1: int, col1: int, total: int) -> float:
    """log P(X = k) for X ~ hypergeometric: row1 draws from total, col1 of them marked."""

    def log_comb(n: int, r: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(r + 1) - math.lgamma(n - r + 1)

    return log_comb(col1, k) + log_comb(total - col1, row1 - k) - log_comb(total, row1)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test on [[a, b], [c, d]].

    Sums the probabilities of every table with the same margins that is no more likely than
    the observed one (the usual definition, as R's ``fisher.test``).
    """
    row1, col1, total = a + b, a + c, a + b + c + d
    if total == 0 or row1 in (0, total) or col1 in (0, total):
        return 1.0
    lo, hi = max(0, row1 + col1 - total), min(row1, col1)
    observed = _log_hypergeom(a, row1, col1, total)
    p = 0.0
    for k in range(lo, hi + 1):
        lp = _log_hypergeom(k, row1, col1, total)
        if lp <= observed + 1e-7:
            p += math.exp(lp)
    return min(1.0, p)


def ratio_ci_katz(
    x1: int, n1: int, x2: int, n2: int, z: float = 1.959963984540054
) -> tuple[float, float] | None:
    """95% interval of the rate ratio (x2/n2) / (x1/n1) by Katz's log method; None with a zero."""
    if x1 == 0 or x2 == 0 or n1 == 0 or n2 == 0:
        return None
    ratio = (x2 / n2) / (x1 / n1)
    se = math.sqrt(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2)
    return ratio * math.exp(-z * se), ratio * math.exp(z * se)


def _pick(rng: random.Random, n: int) -> int:
    return min(int(rng.random() * n), n - 1)


def bootstrap_runs(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    statistic: Callable[[Sequence[float]], float],
    *,
    rng: random.Random,
    resamples: int = 2000,
) -> list[list[float]]:
    """Bootstrap distributions of ``statistic(B) / statistic(A)`` for several metrics at once.

    ``a[r]`` is run r's vector of metric values (one per metric); runs are resampled with
    replacement on each side, the same run draw for every metric (so metrics stay paired).
    Returns, per metric, the sorted list of resampled ratios (non-finite ones dropped).
    """
    metrics = len(a[0]) if a else 0
    out: list[list[float]] = [[] for _ in range(metrics)]
    na, nb = len(a), len(b)
    for _ in range(resamples):
        ra = [a[_pick(rng, na)] for _ in range(na)]
        rb = [b[_pick(rng, nb)] for _ in range(nb)]
        for m in range(metrics):
            sa = statistic([run[m] for run in ra])
            sb = statistic([run[m] for run in rb])
            if sa > 0 and math.isfinite(sb):
                out[m].append(sb / sa)
    for values in out:
        values.sort()
    return out


@dataclass(frozen=True)
class Bucketed:
    """One per-second interval of one op: its length, call count and latency buckets.

    ``buckets`` maps a log bucket (see :func:`loadtest.analysis.compare.intervals.bucket_of`) to a count.
    """

    start_s: float
    length_s: float
    count: int
    buckets: tuple[tuple[int, int], ...]


def _block_draw(n: int, rng: random.Random) -> list[int]:
    """Indices of a circular block bootstrap resample of n intervals (block length ~ n^(1/3))."""
    length = max(1, round(n ** (1 / 3)))
    out: list[int] = []
    while len(out) < n:
        start = _pick(rng, n)
        out.extend((start + k) % n for k in range(length))
    return out[:n]


def block_bootstrap(
    runs: Sequence[Sequence[Bucketed]],
    summarise: Callable[[dict[int, int], int, float], list[float]],
    *,
    rng: random.Random,
    resamples: int,
) -> list[list[float]]:
    """Resampled summaries of one side: runs drawn with replacement, then blocks of seconds.

    With one run this is a plain circular block bootstrap over its intervals; with several,
    a two-level (hierarchical) bootstrap, so both the run-to-run and the second-to-second
    variation are in the spread. ``summarise(buckets, count, seconds)`` turns a merged
    resample into a vector of metric values; the result is one vector per resample.
    """
    usable = [run for run in runs if run]
    out: list[list[float]] = []
    if not usable:
        return out
    for _ in range(resamples):
        weights: dict[tuple[int, int], int] = {}
        for _r in range(len(usable)):
            r = _pick(rng, len(usable))
            for i in _block_draw(len(usable[r]), rng):
                weights[(r, i)] = weights.get((r, i), 0) + 1
        merged: dict[int, int] = {}
        count = 0
        seconds = 0.0
        for (r, i), w in weights.items():
            interval = usable[r][i]
            count += interval.count * w
            seconds += interval.length_s * w
            for bucket, c in interval.buckets:
                merged[bucket] = merged.get(bucket, 0) + c * w
        out.append(summarise(merged, count, seconds))
    return out


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value of Student's t with ``df`` degrees of freedom (df may be fractional)."""
    if not math.isfinite(t):
        return 0.0
    return min(1.0, _betainc(df / 2, 0.5, df / (df + t * t)))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t, by bisection on :func:`t_two_sided_p`."""
    target = 2 * (1 - p)
    lo, hi = 0.0, 1.0
    while t_two_sided_p(hi, df) > target:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if t_two_sided_p(mid, df) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class Welch:
    """Welch's two-sample t on ``y - x``: the difference of means, its standard error, df and p."""

    diff: float
    se: float
    df: float
    p: float
    #: Pooled run-to-run standard deviation (for planning how many runs would settle a question).
    sd: float

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        if self.se == 0:
            return self.diff, self.diff
        half = t_quantile(0.5 + confidence / 2, self.df) * self.se
        return self.diff - half, self.diff + half


def welch(x: Sequence[float], y: Sequence[float]) -> Welch | None:
    """Welch's unequal-variance t-test of mean(y) - mean(x); None with fewer than 2 values a side.

    Used on the logarithms of per-run figures, so the difference is a log ratio. Unlike a rank
    test, its p-value is not floored by the number of orderings (5 runs against 5 can never go
    below 0.008 with Mann-Whitney), which a verdict controlled over a hundred figures needs.
    """
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        return None
    m1, m2 = sum(x) / n1, sum(y) / n2
    v1 = sum((v - m1) ** 2 for v in x) / (n1 - 1)
    v2 = sum((v - m2) ** 2 for v in y) / (n2 - 1)
    diff = m2 - m1
    sd = math.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / (n1 + n2 - 2))
    se2 = v1 / n1 + v2 / n2
    if se2 <= 0:
        # Identical values within each side: no spread to weigh the difference against.
        return Welch(diff, 0.0, float(n1 + n2 - 2), 1.0 if diff == 0 else 0.0, 0.0)
    se = math.sqrt(se2)
    df = se2**2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
    return Welch(diff, se, df, t_two_sided_p(diff / se, df), sd)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given.

    When every null hypothesis is true (an A/A comparison), rejecting where q < alpha makes a
    false alarm anywhere in the family at most ``alpha`` likely (for independent or positively
    dependent tests, as figures of one run are); with real changes it keeps more power than
    Holm's family-wise correction.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        out[i] = min(1.0, running)
    return out


def normal_quantile(p: float) -> float:
    """The ``p`` quantile of the standard normal (bisection on erfc; for planning figures)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
