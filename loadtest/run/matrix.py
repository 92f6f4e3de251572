"""The pre-upgrade benchmark: one isolated environment per SDK spec, interleaved repeated runs.

By default only the server under test runs inside those environments; the tester itself stays
in its own, so that what changes between runs is the SDK and nothing else. With the SDK client
(``--client sdk``) the calls are made by an ``mcp`` client too: each side's own
(``client_specs`` empty), or the given client releases crossed with the server releases
(``--client-sdk``), one side per pair. Runs are interleaved (A B B A A B ...) so that a slow
drift of the machine (thermal, a neighbour's load) falls on all sides alike, and every run gets
a fresh server process.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadtest.conformance import CheckDiff, diff_checks
from loadtest.core.errors import LoadtestError
from loadtest.core.names import MATRIX_FILE
from loadtest.core.units import format_duration
from loadtest.envs import SdkEnv, ensure_env
from loadtest.run.clients.config import (
    BUILTIN,
    DEFAULT_WORKERS,
    ClientConfig,
    ClientKind,
    sdk_client_from_env,
)
from loadtest.run.conformance import run_checks
from loadtest.run.driver import Progress, RunControl
from loadtest.run.execute import RunOutcome, execute
from loadtest.scenario import Scenario

MATRIX_SCHEMA = "mcp-loadtest/matrix/1"
DEFAULT_REPEAT = 5
#: Per-run overhead (server starts, warm-up, drain) used for the first time estimate.
_STARTUP_ESTIMATE_S = 4.0


@dataclass
class Side:
    """One SDK spec (and, crossed with client releases, one client spec): environments and runs."""

    spec: str
    label: str = ""
    env: SdkEnv | None = None
    #: The SDK client release of this side (``--client-sdk``); None: the built-in client, or
    #: with ``--client sdk`` the side's own environment's client.
    client_spec: str | None = None
    client: ClientConfig = BUILTIN
    error: str | None = None
    runs: list[Path] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)
    #: Conformance results of this SDK's server (run.json ``checks`` entries), if checked.
    checks: list[dict[str, Any]] | None = None

    @property
    def usable(self) -> bool:
        return self.env is not None and bool(self.runs)


def interleaved(count: int, repeat: int) -> list[tuple[int, int]]:
    """(side, repeat) pairs in ABBA order: A B, B A, A B, ... for any number of sides."""
    order: list[tuple[int, int]] = []
    for r in range(repeat):
        sides = range(count) if r % 2 == 0 else range(count - 1, -1, -1)
        order.extend((side, r) for side in sides)
    return order


def label_for(env: SdkEnv, taken: set[str], client: SdkEnv | None = None) -> str:
    """A directory-safe name for a side: ``mcp-1.23.1``, made unique if two specs resolve alike.

    A side with a client release of its own is ``mcp-1.23.1_client-mcp-2.3.0``.
    """
    name = f"mcp-{env.mcp_version}" + (f"_client-mcp-{client.mcp_version}" if client is not None else "")
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    label, n = base, 1
    while label in taken:
        n += 1
        label = f"{base}~{n}"
    taken.add(label)
    return label


async def run_matrix(
    scenario: Scenario,
    specs: Sequence[str],
    directory: Path,
    *,
    repeat: int = DEFAULT_REPEAT,
    python: str | None = None,
    install: Sequence[str] = (),
    cache_dir: Path | None = None,
    check: bool = True,
    say: Callable[[str], None] = print,
    progress: Progress | None = None,
    control: RunControl | None = None,
    client: ClientKind = "builtin",
    client_specs: Sequence[str] = (),
    client_workers: int = DEFAULT_WORKERS,
    workers: int = 1,
) -> list[Side]:
    """Build every environment, then run the scenario ``repeat`` times per side, interleaved.

    ``client="sdk"`` has an ``mcp`` SDK client make the calls: each side's own, or, given
    ``client_specs``, each of those releases against each server release (one side per pair,
    servers outer). A side whose environment cannot be built, or whose server never starts, is
    reported and left out; the others still run. The plan and what happened go to ``matrix.json``.
    """
    control = control or RunControl()
    if client_specs:
        client = "sdk"
        sides = [Side(spec, client_spec=client_spec) for spec in specs for client_spec in client_specs]
    else:
        sides = [Side(spec) for spec in specs]
    taken: set[str] = set()
    server_envs: dict[str, SdkEnv | str] = {}
    client_envs: dict[str, SdkEnv | str] = {}
    checked: dict[str, list[dict[str, Any]] | None] = {}
    for side in sides:
        server_env = _environment(
            side.spec, server_envs, say, python=python, extra=install, cache_dir=cache_dir
        )
        if isinstance(server_env, str):
            side.error = server_env
            continue
        side.env = server_env
        client_env: SdkEnv | None = None
        if side.client_spec is not None:
            built = _environment(
                side.client_spec,
                client_envs,
                say,
                python=python,
                extra=(),
                cache_dir=cache_dir,
                what="client",
            )
            if isinstance(built, str):
                side.error = built
                side.env = None
                continue
            client_env = built
        if client == "sdk":
            side.client = sdk_client_from_env(client_env or server_env, client_workers)
        side.label = label_for(server_env, taken, client_env)
        if check:
            # The conformance checks are of the server: once per server release.
            if side.spec not in checked:
                await _check(side, scenario, directory, say)
                checked[side.spec] = side.checks
            side.checks = checked[side.spec]
    ready = [i for i, side in enumerate(sides) if side.env is not None]
    plan = [(ready[i], r) for i, r in interleaved(len(ready), repeat)]
    per_run = (scenario.workload.total_duration or 10.0) + scenario.workload.warmup + _STARTUP_ESTIMATE_S
    estimate = per_run * len(scenario.transports)
    spent: list[float] = []
    for step, (index, r) in enumerate(plan, start=1):
        if control.interrupted.is_set():
            break
        side = sides[index]
        env = side.env
        assert env is not None
        if r > 0 and not side.runs and len(side.failed_runs) >= 2:
            continue  # this server does not start here; do not spend every repeat finding out
        left = len(plan) - step + 1
        eta = (statistics.mean(spent) if spent else estimate) * left
        say(
            f"[{step}/{len(plan)}] {side.label} ({side_title(side)}) repeat {r + 1}/{repeat}, about {format_duration(eta)} left"
        )
        run_path = directory / side.label / f"run-{r + 1:02d}"
        run_path.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        outcome = await execute(
            scenario,
            run_path,
            python=str(env.python),
            progress=progress,
            control=control,
            sdk={"name": "mcp", "version": env.mcp_version, "spec": side.spec, "freeze": env.freeze},
            checks=side.checks,
            client=side.client,
            workers=workers,
        )
        spent.append(time.monotonic() - began)
        _account(side, outcome, say)
    _write_plan(directory, scenario, sides, repeat, plan)
    return sides


def side_title(side: Side) -> str:
    """What a side is, for people: ``1.23.1`` or ``server 1.23.1, client mcp 2.3.0 (2.3.0)``."""
    if not side.client.is_sdk:
        return side.spec
    if side.client_spec is None:
        return f"{side.spec}, its own SDK client"
    return f"server {side.spec}, SDK client mcp {side.client.mcp_version} ({side.client_spec})"


def _environment(
    spec: str,
    built: dict[str, SdkEnv | str],
    say: Callable[[str], None],
    *,
    python: str | None,
    extra: Sequence[str],
    cache_dir: Path | None,
    what: str = "environment",
) -> SdkEnv | str:
    """The environment for ``spec`` (once per spec), or why it could not be built."""
    if spec in built:
        return built[spec]
    name = f"{what} environment" if what != "environment" else what
    say(f"{name} for {spec!r}: preparing")
    try:
        env = ensure_env(
            spec, python=python, extra=extra, cache_dir=cache_dir, log=lambda line: say(f"  {line}")
        )
    except LoadtestError as exc:
        say(f"{name} for {spec!r} failed: {exc}")
        built[spec] = str(exc)
        return str(exc)
    say(f"{name} for {spec!r}: mcp {env.mcp_version} ({env.python})")
    built[spec] = env
    return env


async def _check(side: Side, scenario: Scenario, directory: Path, say: Callable[[str], None]) -> None:
    """Conformance checks once per SDK, against its own fresh servers."""
    assert side.env is not None
    say(f"{side.label}: conformance checks")
    log_dir = directory / side.label / "check"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        results = await run_checks(scenario, python=str(side.env.python), log_dir=log_dir)
    except LoadtestError as exc:
        say(f"{side.label}: conformance checks could not run: {exc}")
        return
    side.checks = [result.to_dict() for result in results]


def check_differences(sides: Sequence[Side]) -> list[tuple[str, str, CheckDiff]]:
    """Every check whose status or observed behaviour differs from the first checked side's."""
    checked = [side for side in sides if side.checks is not None]
    if len(checked) < 2:
        return []
    base = checked[0]
    assert base.checks is not None
    out: list[tuple[str, str, CheckDiff]] = []
    for other in checked[1:]:
        assert other.checks is not None
        out.extend((base.label, other.label, diff) for diff in diff_checks(base.checks, other.checks))
    return out


def _account(side: Side, outcome: RunOutcome, say: Callable[[str], None]) -> None:
    if outcome.failure is not None:
        side.failed_runs.append(str(outcome.path))
        say(f"  {side.label} ({side_title(side)}): run failed: {outcome.failure}")
    elif not outcome.interrupted:
        side.runs.append(outcome.path.parent)


def _write_plan(
    directory: Path, scenario: Scenario, sides: list[Side], repeat: int, plan: list[tuple[int, int]]
) -> None:
    document = {
        "schema": MATRIX_SCHEMA,
        "scenario": scenario.name,
        "scenario_hash": scenario.scenario_hash,
        "workload_hash": scenario.workload_hash,
        "repeat": repeat,
        "order": [sides[index].label for index, _ in plan],
        "sides": [
            {
                "spec": side.spec,
                "label": side.label,
                "mcp_version": side.env.mcp_version if side.env else None,
                "python": str(side.env.python) if side.env else None,
                "error": side.error,
                "client_spec": side.client_spec,
                "client": {k: v for k, v in side.client.meta().items() if k != "freeze"},
                "runs": [str(path.relative_to(directory)) for path in side.runs],
                "failed_runs": side.failed_runs,
                "checks": side.checks,
            }
            for side in sides
        ],
    }
    (directory / MATRIX_FILE).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))


def side_by_side(sides: Sequence[Side]) -> list[list[str]]:
    """Medians over each side's runs, per transport x op: calls/s, p50, p99, errors, silent."""
    from loadtest.core.units import format_latency_us
    from loadtest.results.document import load_run

    usable = [side for side in sides if side.usable]
    per_side: list[dict[tuple[str, str], list[dict[str, Any]]]] = []
    for side in usable:
        ops: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for run in side.runs:
            document = load_run(run)
            for transport, section in document.get("transports", {}).items():
                for op, stats in section.get("ops", {}).items():
                    ops.setdefault((transport, op), []).append(stats)
        per_side.append(ops)
    keys = sorted({key for ops in per_side for key in ops}, key=lambda k: (k[0], k[1]))
    header = ["transport", "op"]
    for side in usable:
        header += [f"{side.label} rate", "p50", "p99", "err", "silent"]
    rows = [header]
    for key in keys:
        row = [key[0], key[1]]
        for ops in per_side:
            runs = ops.get(key, [])
            if not runs:
                row += ["-"] * 5
                continue
            p50 = [s["latency_us"]["p50"] for s in runs if s["latency_us"].get("p50") is not None]
            p99 = [s["latency_us"]["p99"] for s in runs if s["latency_us"].get("p99") is not None]
            row += [
                f"{statistics.median(s.get('rate', 0.0) for s in runs):.1f}",
                format_latency_us(statistics.median(p50)) if p50 else "-",
                format_latency_us(statistics.median(p99)) if p99 else "-",
                str(sum(sum(s.get("errors", {}).values()) for s in runs)),
                str(sum(sum(s.get("silent", {}).values()) for s in runs)),
            ]
        rows.append(row)
    return rows
