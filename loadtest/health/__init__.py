"""Server health: resource samples over time, memory slopes and verdicts, crashes and hangs.

:mod:`~loadtest.health.watch` samples a transport's target while it runs,
:mod:`~loadtest.health.analysis` turns samples into slopes and a verdict, and
:mod:`~loadtest.health.log` is the line-by-line log that outlives a killed run.
"""

from loadtest.health.analysis import GROWING, STABLE, UNKNOWN, Sample, assess
from loadtest.health.log import HealthLog, health_log_path, read_health_log
from loadtest.health.watch import HangDetector, HealthWatch, samples_of

__all__ = [
    "GROWING",
    "STABLE",
    "UNKNOWN",
    "HangDetector",
    "HealthLog",
    "HealthWatch",
    "Sample",
    "assess",
    "health_log_path",
    "read_health_log",
    "samples_of",
]
