"""The Streamable HTTP checks' one registry, and the survival runner shared by probe steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.conformance.http_client import HttpSession, HttpTarget
from loadtest.conformance.http_registry import http_step, registered_steps
from loadtest.conformance.http_sessions import (
    DELETE,
    ENDPOINT,
    INITIALIZE,
    NOTIFICATION_202,
    SESSION_ID,
    TERMINATED,
)
from loadtest.conformance.model import CheckResult, CheckSpec
from loadtest.conformance.survival import Step, run_surviving
from tests.test_check import _check_reference

pytestmark = pytest.mark.anyio


async def test_every_registered_check_is_reported_once_in_its_declared_order() -> None:
    # One registry: what a step declares is what it reports (else a dead server's SKIPPED
    # list would differ from a live server's list).
    reported = list(await _check_reference("http"))
    setup = [ENDPOINT.id, INITIALIZE.id, SESSION_ID.id, NOTIFICATION_202.id]
    steps = [spec.id for step in registered_steps() for spec in step.specs]
    assert reported == [*setup, *steps, DELETE.id, TERMINATED.id, "http-server-survives"]
    assert len(steps) == len(set(steps)) == 27


def test_two_steps_cannot_take_one_place() -> None:
    taken = registered_steps()[0]

    async def intruder(target: HttpTarget, session: HttpSession) -> CheckResult:
        raise AssertionError("never run")

    with pytest.raises(ValueError, match=f"intruder and {taken.name} both ask for place 10"):
        http_step(*taken.specs, order=10)(intruder)
    assert registered_steps()[0] is taken


def _spec(n: int) -> CheckSpec:
    return CheckSpec(f"x-step-{n}", f"Step{n}", "", ("2025-11-25",), "basic")


def _steps(ran: list[int]) -> list[Step[dict[str, bool]]]:
    def make(n: int) -> Step[dict[str, bool]]:
        async def run(context: dict[str, bool]) -> list[CheckResult]:
            ran.append(n)
            if n == 2:
                context["up"] = False  # this probe breaks the server
            return [_spec(n).result("x", "SUCCESS", f"step {n}")]

        return Step(f"step{n}", (_spec(n),), run)

    return [make(n) for n in range(1, 5)]


async def _alive(context: dict[str, bool]) -> bool:
    return context["up"]


async def test_a_server_we_did_not_start_leaves_the_rest_skipped() -> None:
    ran: list[int] = []
    survival = await run_surviving(_steps(ran), {"up": True}, transport="x", alive=_alive, reopen=None)
    assert ran == [1, 2]
    assert [(r.id, r.status) for r in survival.results] == [
        ("x-step-1", "SUCCESS"),
        ("x-step-2", "SUCCESS"),
        ("x-step-3", "SKIPPED"),
        ("x-step-4", "SKIPPED"),
    ]
    assert survival.results[2].error_message == "the server stopped answering after x-step-2"
    verdict = survival.result(_spec(0), "x")
    assert (verdict.status, verdict.observed) == ("FAILURE", "server stopped answering after x-step-2")
    assert verdict.details == {"broken_by": ["x-step-2"], "restarted": False}


async def test_a_launched_server_is_restarted_and_the_rest_still_run() -> None:
    ran: list[int] = []
    fresh = {"up": True}

    async def reopen() -> dict[str, bool]:
        return fresh

    survival = await run_surviving(_steps(ran), {"up": True}, transport="x", alive=_alive, reopen=reopen)
    assert ran == [1, 2, 3, 4]
    assert survival.context is fresh
    assert {r.status for r in survival.results} == {"SUCCESS"}
    assert survival.result(_spec(0), "x").details == {"broken_by": ["x-step-2"], "restarted": True}


def test_no_conformance_module_is_over_400_lines() -> None:
    package = Path(__file__).resolve().parent.parent / "loadtest" / "conformance"
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in package.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
