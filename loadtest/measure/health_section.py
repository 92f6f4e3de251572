"""The ``server.health`` section of run.json, from samples and events however they were kept.

Built at the end of a run from the watch's samples, and by ``report`` from the health log of
a run that was killed; both go through :func:`health_section`, so they say the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadtest.measure.health import Sample, assess

__all__ = ["EVENT_KINDS", "health_section"]

#: The events counted in the section (``crash`` -> ``crashes``, ...).
EVENT_KINDS = {
    "crash": "crashes",
    "hang": "hangs",
    "restart": "restarts",
    "restart_failed": "restart_failures",
}


def _idle(before: Sample | None, after: Sample | None, duration_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {"duration_s": round(duration_s, 3)}
    if before is not None and after is not None:
        out.update(
            rss_before_bytes=before.rss,
            rss_after_bytes=after.rss,
            released_bytes=before.rss - after.rss,
            fds_before=before.fds,
            fds_after=after.fds,
        )
    return out


def health_section(
    samples: Sequence[Sample],
    *,
    sample_every_s: float,
    warmup_s: float,
    per_session: bool,
    watched: bool,
    measure_start_s: float | None,
    counts: Mapping[str, int],
    events: Sequence[Mapping[str, Any]],
    idle: tuple[float, Sample | None, Sample | None, float] | None = None,
) -> dict[str, Any]:
    """``server.health``: :func:`~loadtest.measure.health.assess` over ``samples``, with events.

    ``counts`` are keyed by event kind; ``events`` are the recorded events (a bounded list);
    ``idle`` is ``(start_s, sample before, last sample, duration_s)`` when an idle period
    followed the load; ``watched`` is False when there was no server process to sample.
    """
    health = assess(samples, warmup_s=warmup_s, per_session=per_session, until_s=idle[0] if idle else None)
    if not watched:
        health["reason"] = "no server process to sample (a running server at a URL)"
    return {
        "sample_every_s": sample_every_s,
        "measure_start_s": measure_start_s,
        **health,
        "idle": _idle(idle[1], idle[2], idle[3]) if idle else None,
        **{key: int(counts.get(kind, 0)) for kind, key in EVENT_KINDS.items()},
        "events": [dict(event) for event in events],
    }
