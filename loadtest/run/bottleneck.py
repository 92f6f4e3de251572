"""Is the load generator the bottleneck? Its own CPU, its own busy loop, or lag from elsewhere.

One event loop is at most one core. The generator may distort latencies in two ways of its
own: its CPU nears a whole core, or its loop wakes late because it was busy with its own work
(a long callback, a GC pause). A loop that wakes late while the process used little CPU was
not running at all: other processes had the CPU (on a shared 2-core machine, the server under
test among them). That lag is real, but the generator is not its cause, and a warning that
blames it misleads; it is reported as coming from elsewhere.

The lag probe (:class:`~loadtest.run.ticker.LagProbe`) measures, for every 10 ms sleep, how
late it woke and how long the loop's thread meanwhile waited, runnable, for a CPU (Linux's
run-queue delay); the lateness beyond that wait is the generator's own ("own lag").
"""

from __future__ import annotations

from typing import Any, Literal

from loadtest.core.names import GENERATOR_BUSY_LIMIT, GENERATOR_LAG_LIMIT_US

Cause = Literal["own_cpu", "own_busy", "elsewhere"]


def bottleneck(cpu_busy: float, lag_p99_us: int, own_lag_p99_us: int | None) -> dict[str, Any] | None:
    """``generator.bottleneck`` of run.json: the cause, or None when the generator kept up.

    ``own_cpu``: its CPU was near one core. ``own_busy``: its loop was late while busy with its
    own work. ``elsewhere``: its loop was late while it was mostly idle (not its cause).
    ``own_lag_p99_us`` None (not measured) counts all lag as its own, as before.
    """
    own_lag = lag_p99_us if own_lag_p99_us is None else own_lag_p99_us
    cause: Cause | None = None
    if cpu_busy > GENERATOR_BUSY_LIMIT:
        cause = "own_cpu"
    elif own_lag > GENERATOR_LAG_LIMIT_US:
        cause = "own_busy"
    elif lag_p99_us > GENERATOR_LAG_LIMIT_US:
        cause = "elsewhere"
    if cause is None:
        return None
    return {
        "cause": cause,
        "cpu_busy": round(cpu_busy, 3),
        "lag_p99_us": lag_p99_us,
        "own_lag_p99_us": own_lag,
        "cpu_limit": GENERATOR_BUSY_LIMIT,
        "lag_limit_us": GENERATOR_LAG_LIMIT_US,
    }


def is_own(found: dict[str, Any] | None) -> bool:
    """Whether ``found`` says the generator itself may be the bottleneck (``saturated``)."""
    return found is not None and found["cause"] in ("own_cpu", "own_busy")


__all__ = ["Cause", "bottleneck", "is_own"]
