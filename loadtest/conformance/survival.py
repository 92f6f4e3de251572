"""Probes that may break the server: run them in order, notice which one did, restart or skip.

Some probes upset some servers (``mcp`` 1.8 dies on an unknown method). After every step a cheap
liveness probe tells whether the server still answers. When it does not, the step is named in
the transport's ``server-survives`` check; a launched target is restarted so that the remaining
checks still say something, and a server we did not start leaves them SKIPPED.

Generic over the context the steps share (for Streamable HTTP, a probe target and a session).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from loadtest.conformance.model import CheckResult, CheckSpec

__all__ = ["Step", "Survival", "run_surviving"]

C = TypeVar("C")


@dataclass(frozen=True)
class Step(Generic[C]):
    """One probe step: the checks it reports, in order, and how to run it."""

    name: str
    specs: tuple[CheckSpec, ...]
    run: Callable[[C], Awaitable[list[CheckResult]]]


@dataclass
class Survival(Generic[C]):
    """What :func:`run_surviving` found: the results, which steps broke the server, the context."""

    results: list[CheckResult]
    broken_by: list[str]
    restarted: bool
    #: The context after the last step: a fresh one when the server was restarted.
    context: C

    def result(self, spec: CheckSpec, transport: str) -> CheckResult:
        """The ``server-survives`` check: SUCCESS when no probe broke the server."""
        observed = (
            "server answers after every probe"
            if not self.broken_by
            else "server stopped answering after " + ", ".join(self.broken_by)
        )
        return spec.result(
            transport,
            "SUCCESS" if not self.broken_by else "FAILURE",
            observed,
            {"broken_by": self.broken_by, "restarted": self.restarted},
            None if not self.broken_by else "a probe left the server unable to answer",
        )


async def run_surviving(
    steps: Sequence[Step[C]],
    context: C,
    *,
    transport: str,
    alive: Callable[[C], Awaitable[bool]],
    reopen: Callable[[], Awaitable[C]] | None,
) -> Survival[C]:
    """Run ``steps`` in order on ``context``, checking after each that the server still answers.

    ``alive`` answers True when it cannot tell (no session to ask on). ``reopen`` restarts a
    launched target and gives a fresh context; None for a server we did not start, whose
    remaining checks are then SKIPPED.
    """
    results: list[CheckResult] = []
    broken_by: list[str] = []
    dead = False
    for step in steps:
        if dead:
            for spec in step.specs:
                results.append(
                    spec.result(
                        transport,
                        "SKIPPED",
                        "not run: the server stopped answering",
                        {},
                        f"the server stopped answering after {broken_by[-1]}",
                    )
                )
            continue
        produced = await step.run(context)
        results.extend(produced)
        if not await alive(context):
            broken_by.append(produced[0].id)
            if reopen is None:
                dead = True
                continue
            context = await reopen()
    return Survival(results, broken_by, bool(broken_by) and reopen is not None, context)
