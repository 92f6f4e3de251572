"""The one registry of Streamable HTTP probe steps, filled by the :func:`http_step` decorator.

A step declares, where it is written, the checks it reports (so that they can be reported as
SKIPPED when the server is gone) and its place in the run: the probes most likely to upset a
server (old releases die on some of them) go last.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from loadtest.conformance.http_client import HttpSession, HttpTarget
from loadtest.conformance.model import CheckResult, CheckSpec
from loadtest.conformance.survival import Step

__all__ = ["HttpCheck", "HttpProbe", "http_step", "registered_steps"]

#: A step: probes through the target on the session, reports one check or several.
HttpCheck = Callable[[HttpTarget, HttpSession], Awaitable[CheckResult | list[CheckResult]]]


@dataclass
class HttpProbe:
    """What the steps share: the endpoint and the first session opened on it."""

    target: HttpTarget
    session: HttpSession


_STEPS: dict[int, Step[HttpProbe]] = {}


def http_step(*specs: CheckSpec, order: int) -> Callable[[HttpCheck], HttpCheck]:
    """Register a step reporting ``specs`` (in that order), run at position ``order``."""

    def register(check: HttpCheck) -> HttpCheck:
        if order in _STEPS and _STEPS[order].name != check.__name__:
            raise ValueError(f"{check.__name__} and {_STEPS[order].name} both ask for place {order}")

        async def run(probe: HttpProbe) -> list[CheckResult]:
            out = await check(probe.target, probe.session)
            return out if isinstance(out, list) else [out]

        _STEPS[order] = Step(check.__name__, specs, run)
        return check

    return register


def registered_steps() -> list[Step[HttpProbe]]:
    """Every registered step, in run order."""
    return [_STEPS[order] for order in sorted(_STEPS)]
