"""The measurement API in one import: histograms, op statistics, the recorder.

The code lives in one module per concept (:mod:`~loadtest.measure.histograms`,
:mod:`~loadtest.measure.opstats`, :mod:`~loadtest.measure.recorder`,
:mod:`~loadtest.measure.summary`, :mod:`~loadtest.measure.hlog`); this module re-exports what
the rest of the package uses, so callers need not know the split.
"""

from __future__ import annotations

from loadtest.core.names import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS
from loadtest.measure.histograms import PERCENTILES, encode_histogram, mean, new_histogram, percentiles
from loadtest.measure.hlog import UNCORRECTED_SUFFIX
from loadtest.measure.opstats import MAX_EXAMPLES, UNATTRIBUTED, OpStats
from loadtest.measure.recorder import LiveStats, Recorder
from loadtest.measure.summary import latency_summary

__all__ = [
    "HIGHEST_US",
    "LOWEST_US",
    "MAX_EXAMPLES",
    "PERCENTILES",
    "SIGNIFICANT_DIGITS",
    "UNATTRIBUTED",
    "UNCORRECTED_SUFFIX",
    "LiveStats",
    "OpStats",
    "Recorder",
    "encode_histogram",
    "latency_summary",
    "mean",
    "new_histogram",
    "percentiles",
]
