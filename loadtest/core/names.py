"""The project's vocabulary: names and ranges that more than one layer must agree on.

Kept here, at the bottom of the layers, so that a writer and its readers cannot drift apart
(the ``.hlog`` writer and its two readers once disagreed on the histogram range). Other
blocks of names (transports, defaults) may join this module; keep each block together.
"""

from __future__ import annotations

# -- results files and latency histograms (owner: the results model, loadtest.results) ---------

#: The run document inside a run directory (README, "Results").
RUN_FILE = "run.json"
#: The plan of a matrix (its sides and repeats), next to the matrix's run directories.
MATRIX_FILE = "matrix.json"
#: Suffix of a transport's HdrHistogram interval log: ``<transport>.hlog``.
HLOG_SUFFIX = ".hlog"
#: What a secret value (an auth header, an API key) is replaced by in anything written.
REDACTED = "<redacted>"

#: Latency histograms: 1 µs .. 1 h at 3 significant digits (README, "Results").
LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
#: The generator's scheduling-lag histograms: 1 µs .. 60 s at 2 significant digits (a lag
#: figure needs no more precision, and the smaller histogram is cheaper to merge).
LAG_RANGE: tuple[int, int, int] = (1, 60_000_000, 2)

__all__ = [
    "HIGHEST_US",
    "HLOG_SUFFIX",
    "LAG_RANGE",
    "LOWEST_US",
    "MATRIX_FILE",
    "REDACTED",
    "RUN_FILE",
    "SIGNIFICANT_DIGITS",
]
