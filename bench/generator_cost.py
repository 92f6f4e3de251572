"""Does the load generator cost far less than the server it measures? (issue 8)

One run measures, against the bundled reference server:

* ``cost``: per transport (stdio, legacy SSE, Streamable HTTP with SSE responses, Streamable
  HTTP with JSON responses), a closed loop of ``tools/call echo`` (unique nonce, exact-text
  check: the normal integrity path) with enough sessions to saturate the server. Calls/s,
  server CPU per call, generator CPU per call and their ratio (goal: <= 0.25), and the same for
  the `mcp` SDK's own client (``bench/sdk_client.py``) against a fresh server in the same run.
* ``sessions``: 1,000 concurrent Streamable HTTP sessions at an open-model 500 calls/s:
  generator peak RSS (goal < 200 MB), event-loop lag p99 (goal < 5 ms), errors.
* ``blob``: a 32 MiB ``resources/read`` on each transport, every byte checked: generator
  peak RSS increase (goal < 4x the blob).
* ``scaling``: calls/s with ``--workers 1`` and ``--workers 2`` (interleaved 1 2 2 1), closed
  loop of ``echo`` over Streamable HTTP with JSON responses, against a server with cores to
  spare (``bench/null_server.py``, ~30 us of CPU per call, so the generator is the bottleneck;
  goal: 2 workers >= 1.3x the calls/s of one) and, for the record, against the reference
  server, which one core cannot serve faster (no spare core on a 2-CPU machine: no gain).
  The generator is not pinned here, so that the workers can spread over the CPUs.

With two or more CPUs the server runs on CPU 1 and the generator (or the SDK client) on CPU 0.
Every case runs in a fresh worker process (``--worker``), so memory peaks never carry over;
the parent collects their JSON, writes the results file and prints the table.

    python bench/generator_cost.py                      # the full run, a few minutes
    python bench/generator_cost.py --quick              # seconds; the smoke test's run
    python bench/generator_cost.py --cases cost --transports http,http-json --out /tmp/c.json
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCHEMA = "mcp-loadtest/bench-generator-cost/1"
DEFAULT_OUT = ROOT / "results" / "bench" / "generator_cost.json"
SDK_CLIENT = Path(__file__).resolve().with_name("sdk_client.py")

#: Benchmark transport name -> (loadtest transport, reference server --json-response).
VARIANTS: dict[str, tuple[str, bool]] = {
    "stdio": ("stdio", False),
    "sse": ("sse", False),
    "http": ("http", False),
    "http-json": ("http", True),
}
CASES = ("cost", "sessions", "blob", "scaling")
#: Scaling case targets: the near-free server (the verdict) and the reference server.
SCALING_TARGETS = ("null", "http-json")
NULL_SERVER = Path(__file__).resolve().with_name("null_server.py")

#: The goals of issue 8.
GOAL_RATIO = 0.25
GOAL_RSS_BYTES = 200 * 1000 * 1000
GOAL_LAG_P99_US = 5_000
GOAL_BLOB_FACTOR = 4.0
#: calls/s with 2 workers over 1, against a server with cores to spare (2 CPUs shared by the
#: two workers and the server: the ideal is 2 / (1 + server/generator cost), ~1.8 here).
GOAL_SCALING = 1.3

#: The sessions case's verdict run (see main()).
SESSIONS_VARIANT = "http-json"
#: The step from the set-up stage's trickle to the full rate (sessions case).
RAMP_S = 0.1
GENERATOR_CPU = 0
SERVER_CPU = 1


@dataclass(frozen=True)
class Plan:
    """How long and how hard each case runs (full, or ``--quick``)."""

    #: Warm-up after every session is up, then the measured window.
    cost_warmup_s: float
    cost_duration_s: float
    cost_sessions_http: int
    cost_sessions_stdio: int
    repeat: int
    sessions: int
    sessions_rate: int
    sessions_duration_s: float
    #: A first stage at a trickle while every session is being opened.
    sessions_setup_s: float
    sessions_setup_rate: int
    blob_bytes: int
    blob_calls: int
    scaling_sessions: int

    @staticmethod
    def for_mode(quick: bool) -> Plan:
        if quick:
            return Plan(0.3, 1.0, 4, 2, 1, 20, 100, 1.5, 1.5, 10, 1 << 20, 1, 4)
        return Plan(2, 8, 16, 4, 2, 1000, 500, 20, 15, 10, 32 << 20, 3, 16)


# -- CPU placement ------------------------------------------------------------------------------


def pinning() -> bool:
    return (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")


def pin_self() -> None:
    if pinning():
        os.sched_setaffinity(0, {GENERATOR_CPU})


def unpin_self() -> None:
    if pinning():
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def pinned(argv: list[str], cpu: int) -> list[str]:
    """``argv`` run on ``cpu`` (``taskset`` execs, so the pid is the program's own)."""
    taskset = shutil.which("taskset")
    if pinning() and taskset:
        return [taskset, "-c", str(cpu), *argv]
    return argv


def pin_pid(pid: int, cpu: int) -> None:
    # Without taskset: pin the child right after launch (it has not done much yet).
    if pinning() and not shutil.which("taskset"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


# -- measuring ----------------------------------------------------------------------------------


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ServerCpu:
    """User + system CPU summed over server processes: one pid, or every reference server
    below a process (stdio: one server per session). Processes are remembered, so one that
    exits keeps its last reading."""

    def __init__(
        self, *, pid: int | None = None, below: int | None = None, match: Callable[[Any], bool] | None = None
    ) -> None:
        import psutil

        self._psutil = psutil
        self._pid = pid
        self._below = below
        self._match = match or _is_reference
        self._procs: dict[tuple[int, float], Any] = {}
        self._last: dict[tuple[int, float], float] = {}

    def _discover(self) -> None:
        psutil = self._psutil
        try:
            if self._pid is not None:
                candidates = [psutil.Process(self._pid)]
            else:
                assert self._below is not None
                candidates = [
                    p for p in psutil.Process(self._below).children(recursive=True) if self._match(p)
                ]
        except psutil.Error:
            return
        for proc in candidates:
            with contextlib.suppress(psutil.Error):
                self._procs.setdefault((proc.pid, proc.create_time()), proc)

    def count(self) -> int:
        self._discover()
        return len(self._procs)

    def sample(self) -> float:
        self._discover()
        for key, proc in self._procs.items():
            with contextlib.suppress(self._psutil.Error):
                times = proc.cpu_times()
                self._last[key] = times.user + times.system
        return sum(self._last.values())


def _is_reference(proc: Any) -> bool:
    try:
        return any(arg.endswith("reference_server.py") for arg in proc.cmdline())
    except Exception:
        return False


def _is_worker(proc: Any) -> bool:
    try:
        return "loadtest.run.workers" in proc.cmdline()
    except Exception:
        return False


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all processes, all CPUs)."""
    import psutil

    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """This process's RSS high-water mark (VmHWM), or ru_maxrss where /proc is missing."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)


# -- the reference server -----------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str | None
    pid: int | None
    #: stdio: the command each session launches.
    command: list[str] | None


@asynccontextmanager
async def reference_server(variant: str) -> AsyncIterator[Server]:
    """A fresh reference server for ``variant`` on the server CPU (stdio: just the command)."""
    from loadtest.core.names import DEFAULT_PATHS, LOOPBACK
    from loadtest.core.process import launch, wait_for_port
    from loadtest.run.targets.reference import free_port, reference_command

    transport, json_response = VARIANTS[variant]
    if transport == "stdio":
        yield Server(None, None, pinned(reference_command("stdio"), SERVER_CPU))
        return
    port = free_port()
    argv = pinned(reference_command(transport, port=port, json_response=json_response), SERVER_CPU)
    async with launch(argv, stdin=False, stdout=False) as process:
        pin_pid(process.pid, SERVER_CPU)
        await wait_for_port(process, LOOPBACK, port, 30)
        yield Server(f"http://{LOOPBACK}:{port}{DEFAULT_PATHS[transport]}", process.pid, None)


@asynccontextmanager
async def null_server() -> AsyncIterator[Server]:
    """A fresh ``bench/null_server.py`` (Streamable HTTP, JSON responses) on the server CPU."""
    from loadtest.core.names import LOOPBACK
    from loadtest.core.process import launch, wait_for_port
    from loadtest.run.targets.reference import free_port

    port = free_port()
    argv = pinned([sys.executable, str(NULL_SERVER), "--host", LOOPBACK, "--port", str(port)], SERVER_CPU)
    async with launch(argv, stdin=False, stdout=False) as process:
        pin_pid(process.pid, SERVER_CPU)
        await wait_for_port(process, LOOPBACK, port, 30)
        yield Server(f"http://{LOOPBACK}:{port}/mcp", process.pid, None)


def scenario_for(variant: str, server: Server, workload: str, ops: str) -> Any:
    from loadtest.scenario import load_scenario

    transport, _ = VARIANTS[variant]
    if server.url is not None:
        target = f"url = {json.dumps(server.url)}"
    else:
        assert server.command is not None
        target = f"command = {json.dumps(server.command)}"
    text = f'transports = ["{transport}"]\n[target]\n{target}\n[workload]\n{workload}\n{ops}\n'
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"bench-{variant}.toml"
        path.write_text(text)
        return load_scenario(path)


ECHO_OP = """
[[ops]]
name = "echo"
tool = "echo"
arguments = { text = "bench {nonce}" }
expect = { text = "bench {nonce}" }
"""


def op_totals(section: dict[str, Any]) -> dict[str, int]:
    calls = ok = errors = silent = 0
    for stats in section.get("ops", {}).values():
        calls += stats["count"]
        ok += stats["ok"]
        errors += sum(stats["errors"].values())
        silent += sum(stats["silent"].values())
    return {"count": calls, "ok": ok, "errors": errors, "silent": silent}


# -- case: cost ---------------------------------------------------------------------------------


def _others(machine_s: float, client_s: float, server_s: float, wall_s: float) -> float | None:
    """Cores' worth of CPU used by everything else on the machine during the window."""
    if wall_s <= 0:
        return None
    return round(max(0.0, machine_s - client_s - server_s) / wall_s, 2)


def _figures(calls: int, wall_s: float, client_cpu_s: float, server_cpu_s: float) -> dict[str, Any]:
    server_us = server_cpu_s / calls * 1e6 if calls else None
    client_us = client_cpu_s / calls * 1e6 if calls else None
    return {
        "calls": calls,
        "wall_s": round(wall_s, 3),
        "calls_per_s": round(calls / wall_s, 1) if wall_s > 0 else None,
        "server_cpu_s": round(server_cpu_s, 3),
        "client_cpu_s": round(client_cpu_s, 3),
        "server_us_per_call": None if server_us is None else round(server_us, 1),
        "client_us_per_call": None if client_us is None else round(client_us, 1),
        "ratio": round(client_us / server_us, 4) if client_us and server_us else None,
        "server_busy": round(server_cpu_s / wall_s, 3) if wall_s > 0 else None,
        "client_busy": round(client_cpu_s / wall_s, 3) if wall_s > 0 else None,
    }


Sample = tuple[float, float, float, int, float]


async def cost_generator(variant: str, plan: Plan) -> dict[str, Any]:
    import anyio

    from loadtest.measure.metrics import Recorder
    from loadtest.run.driver import RunControl, run_scenario

    transport, _ = VARIANTS[variant]
    sessions = plan.cost_sessions_stdio if transport == "stdio" else plan.cost_sessions_http
    recorder = Recorder(out_dir=None)
    control = RunControl()
    samples: list[Sample] = []

    def sample() -> Sample:
        return (
            time.perf_counter(),
            self_cpu_s(),
            server_cpu.sample(),
            recorder.live(transport).calls,
            machine_busy_s(),
        )

    def opened() -> int:
        n: int = recorder.summary().get(transport, {}).get("sessions", {}).get("opened", 0)
        return n

    async def window() -> None:
        # Opens once every session is up and warm (so no server start-up CPU leaks in: a
        # stdio server spends ~1 s of CPU importing `mcp`), closes before the drain. The run
        # itself is planned far longer and ended here, like a Ctrl-C (in-flight calls finish).
        # Polled: the recorder signals nothing when a session opens.
        while opened() < sessions:  # noqa: ASYNC110
            await anyio.sleep(0.05)
        await anyio.sleep(plan.cost_warmup_s)
        samples.append(sample())
        remaining = plan.cost_duration_s
        while remaining > 1e-9:
            step = min(1.0, remaining)
            await anyio.sleep(step)
            remaining -= step
            samples.append(sample())
        control.interrupted.set()

    async with reference_server(variant) as server:
        # No driver warm-up: the window above has its own, and every call is counted.
        workload = f'model = "closed"\nsessions = {sessions}\nwarmup = "0s"\nduration = "600s"'
        scenario = scenario_for(variant, server, workload, ECHO_OP)
        server_cpu = ServerCpu(pid=server.pid) if server.pid is not None else ServerCpu(below=os.getpid())
        async with anyio.create_task_group() as tg:
            tg.start_soon(window)
            await run_scenario(scenario, recorder, control=control)
            tg.cancel_scope.cancel()
        recorder.finish()
    section = recorder.summary()[transport]
    if len(samples) < 2:
        raise RuntimeError(f"{variant}: the run ended before the measurement window closed")
    (t0, g0, s0, c0, m0), (t1, g1, s1, c1, m1) = samples[0], samples[-1]
    out = _figures(c1 - c0, t1 - t0, g1 - g0, s1 - s0)
    out["others_busy"] = _others(m1 - m0, g1 - g0, s1 - s0, t1 - t0)
    # Per-second ratios: their spread shows how steady (or disturbed) the window was.
    out["ratio_per_second"] = [
        round((b[1] - a[1]) / (b[2] - a[2]), 3) for a, b in itertools.pairwise(samples) if b[2] > a[2]
    ]
    out["sessions"] = sessions
    out["server_processes"] = server_cpu.count()
    out["integrity"] = op_totals(section)
    out["generator_report"] = {
        k: section["generator"].get(k) for k in ("cpu_busy", "lag_p99_us", "saturated", "in_flight_max")
    }
    return out


async def cost_sdk(variant: str, plan: Plan) -> dict[str, Any]:
    import anyio
    from anyio.streams.buffered import BufferedByteReceiveStream

    from loadtest.core.process import launch

    transport, _ = VARIANTS[variant]
    sessions = plan.cost_sessions_stdio if transport == "stdio" else plan.cost_sessions_http
    warmup = plan.cost_warmup_s
    async with reference_server(variant) as server:
        argv = [
            sys.executable,
            str(SDK_CLIENT),
            "--transport",
            transport,
            "--sessions",
            str(sessions),
            "--warmup",
            str(warmup),
            "--duration",
            str(plan.cost_duration_s),
        ]
        if server.url is not None:
            argv += ["--url", server.url]
        else:
            assert server.command is not None
            argv += ["--", *server.command]
        async with launch(pinned(argv, GENERATOR_CPU), stdin=False, stdout=True) as client:
            server_cpu = ServerCpu(pid=server.pid) if server.pid is not None else ServerCpu(below=client.pid)
            assert client.process.stdout is not None
            lines = BufferedByteReceiveStream(client.process.stdout)
            start: tuple[float, float, float] | None = None
            end: dict[str, Any] | None = None
            with anyio.fail_after(plan.cost_duration_s + warmup + 90):
                while end is None:
                    try:
                        line = await lines.receive_until(b"\n", 1 << 20)
                    except (anyio.EndOfStream, anyio.IncompleteRead):
                        raise RuntimeError(f"sdk client ended early: {client.stderr_tail()}") from None
                    event = json.loads(line)
                    if event["event"] == "start":
                        start = (time.perf_counter(), server_cpu.sample(), machine_busy_s())
                    elif event["event"] == "end":
                        t1, s1, m1 = time.perf_counter(), server_cpu.sample(), machine_busy_s()
                        end = event
                    elif event["event"] == "error":
                        raise RuntimeError(f"sdk client: {event['detail']}")
    assert start is not None
    assert end is not None
    # The client's own wall clock and CPU; the server's over the same (pipe-delimited) window.
    out = _figures(end["calls"], end["wall_s"], end["cpu_s"], s1 - start[1])
    out["parent_wall_s"] = round(t1 - start[0], 3)
    out["others_busy"] = _others(m1 - start[2], end["cpu_s"], s1 - start[1], t1 - start[0])
    out["sessions"] = sessions
    out["server_processes"] = server_cpu.count()
    out["errors"] = end["errors"]
    out["failures"] = end.get("failures", [])
    return out


async def case_cost(variant: str, plan: Plan) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"generator": [], "sdk": []}
    # Interleaved A B, B A, ...: slow drift on a shared machine hits both alike.
    for index in range(plan.repeat):
        order = ("generator", "sdk") if index % 2 == 0 else ("sdk", "generator")
        for who in order:
            result = await (cost_generator(variant, plan) if who == "generator" else cost_sdk(variant, plan))
            runs[who].append(result)
            log(f"  {variant} {who}: {_line(result)}")
    out: dict[str, Any] = {}
    for who, results in runs.items():
        out[who] = {**_median_figures(results), "runs": results}
    gen_ratio, sdk_ratio = out["generator"]["ratio"], out["sdk"]["ratio"]
    out["ratio"] = gen_ratio
    out["sdk_ratio"] = sdk_ratio
    out["times_cheaper_than_sdk"] = round(sdk_ratio / gen_ratio, 2) if gen_ratio and sdk_ratio else None
    gen_us, sdk_us = out["generator"]["client_us_per_call"], out["sdk"]["client_us_per_call"]
    out["times_less_cpu_per_call_than_sdk"] = round(sdk_us / gen_us, 2) if gen_us and sdk_us else None
    out["passed"] = gen_ratio is not None and gen_ratio <= GOAL_RATIO
    return out


# -- case: scaling ------------------------------------------------------------------------------


async def scaling_run(target: str, workers: int, plan: Plan) -> dict[str, Any]:
    """One closed-loop run with ``workers`` generator processes; figures over the measured window."""
    from loadtest.measure.metrics import Recorder
    from loadtest.run.driver import Progress, run_scenario

    samples: list[tuple[float, int, float, float, float]] = []

    class Sampler(Progress):
        # Called at every interval boundary once measuring, with the merged counts.
        def tick(self, transport: str, elapsed_s: float, warming: bool, recorder: Recorder) -> None:
            if not warming:
                samples.append(
                    (
                        time.perf_counter(),
                        recorder.live(transport).calls,
                        generator_cpu(),
                        server_cpu.sample(),
                        machine_busy_s(),
                    )
                )

    def generator_cpu() -> float:
        return self_cpu_s() + worker_cpu.sample()

    server_cm = null_server() if target == "null" else reference_server(target)
    async with server_cm as server:
        # Whole seconds: the window runs from interval boundary to boundary (progress ticks).
        warmup, duration = max(1, round(plan.cost_warmup_s)), max(2, round(plan.cost_duration_s))
        workload = f'model = "closed"\nsessions = {plan.scaling_sessions}\nwarmup = "{warmup}s"\nduration = "{duration}s"'

        scenario = scenario_for("http-json", server, workload, ECHO_OP)
        server_cpu = ServerCpu(pid=server.pid)
        worker_cpu = ServerCpu(below=os.getpid(), match=_is_worker)
        recorder = Recorder(out_dir=None)
        await run_scenario(scenario, recorder, progress=Sampler(), workers=workers)
        recorder.finish()
    if len(samples) < 2:
        raise RuntimeError(f"scaling {target} x{workers}: the run ended before a measured interval closed")
    (t0, c0, g0, s0, m0), (t1, c1, g1, s1, m1) = samples[0], samples[-1]
    out = _figures(c1 - c0, t1 - t0, g1 - g0, s1 - s0)
    # Other engineers' work on a shared machine takes the spare core this case needs.
    out["others_busy"] = _others(m1 - m0, g1 - g0, s1 - s0, t1 - t0)
    out["workers"] = workers
    out["integrity"] = op_totals(recorder.summary()["http"])
    return out


async def case_scaling(target: str, plan: Plan) -> dict[str, Any]:
    # The workers must be free to spread over the CPUs (the server stays on its own).
    unpin_self()
    order = [1, 2, 2, 1] if plan.repeat > 1 else [1, 2]
    runs: list[dict[str, Any]] = []
    for workers in order:
        result = await scaling_run(target, workers, plan)
        runs.append(result)
        log(
            f"  {target} x{workers}: {result['calls_per_s']} calls/s, generator {result['client_busy']} cores,"
            f" server {result['server_busy']} cores, others {result['others_busy']} cores"
        )
    by_workers = {str(n): _median_figures([r for r in runs if r["workers"] == n]) for n in sorted(set(order))}
    one, two = by_workers["1"]["calls_per_s"], by_workers["2"]["calls_per_s"]
    speedup = round(two / one, 2) if one and two else None
    return {
        "target": target,
        "cpus": os.cpu_count(),
        "sessions": plan.scaling_sessions,
        "by_workers": by_workers,
        "speedup": speedup,
        "runs": runs,
        "passed": speedup is not None and speedup >= GOAL_SCALING,
    }


def _median_figures(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = (
        "calls_per_s",
        "server_us_per_call",
        "client_us_per_call",
        "ratio",
        "server_busy",
        "client_busy",
        "others_busy",
    )
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in results if r.get(key) is not None]
        out[key] = round(statistics.median(values), 4) if values else None
    out["calls"] = sum(r["calls"] for r in results)
    return out


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['calls_per_s']} calls/s, server {r['server_us_per_call']} us/call (busy {r['server_busy']}),"
        f" client {r['client_us_per_call']} us/call (busy {r['client_busy']}), ratio {r['ratio']}"
    )


# -- case: sessions -----------------------------------------------------------------------------


async def case_sessions(variant: str, plan: Plan) -> dict[str, Any]:
    """1,000 Streamable HTTP sessions held open under an open-model 500 calls/s.

    The driver opens every session at once; on one core the reference server needs many
    seconds for that, so the run has two stages: a set-up stage at a trickle, then the full
    rate. The *steady* window is the full-rate stage from the moment every session is open;
    RSS peak and errors cover the whole run, lag is given for both.
    """
    import anyio

    from loadtest.measure.metrics import Recorder
    from loadtest.run.driver import run_scenario

    rss_start = rss_bytes()
    reset_peak_rss()
    rss_samples: list[int] = []
    lags: list[tuple[float, int]] = []
    recorder = Recorder(out_dir=None)
    window: list[tuple[float, float, float, int]] = []
    all_open_at: list[float] = []

    async def lag_probe() -> None:
        # As the driver's own probe: how late a 10 ms sleep wakes up.
        while True:
            before = time.perf_counter()
            await anyio.sleep(0.01)
            now = time.perf_counter()
            lags.append((now, max(0, int((now - before - 0.01) * 1e6))))

    async def sampler() -> None:
        setup_s = plan.sessions_setup_s + RAMP_S
        end_s = setup_s + plan.sessions_duration_s
        while True:
            await anyio.sleep(0.25)
            rss_samples.append(rss_bytes())
            live = recorder.live("http")
            if not all_open_at:
                opened = recorder.summary().get("http", {}).get("sessions", {}).get("opened", 0)
                if opened >= plan.sessions:
                    all_open_at.append(live.elapsed_s)
                continue
            if setup_s <= live.elapsed_s <= end_s:
                window.append((time.perf_counter(), self_cpu_s(), server_cpu.sample(), live.calls))

    async with reference_server(variant) as server:
        assert server.pid is not None
        server_cpu = ServerCpu(pid=server.pid)
        workload = (
            f'model = "open"\nsessions = {plan.sessions}\nwarmup = "0s"\nconnect_timeout = "120s"\n'
            f"stages = [\n"
            f'  {{ duration = "{plan.sessions_setup_s}s", rate = "{plan.sessions_setup_rate}/s" }},\n'
            # Stages ramp linearly from the previous rate (k6-style): a 0.1 s step up, then hold.
            f'  {{ duration = "{RAMP_S}s", rate = "{plan.sessions_rate}/s" }},\n'
            f'  {{ duration = "{plan.sessions_duration_s}s", rate = "{plan.sessions_rate}/s" }},\n]'
        )
        scenario = scenario_for(variant, server, workload, ECHO_OP)
        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lag_probe)
            tg.start_soon(sampler)
            await run_scenario(scenario, recorder)
            tg.cancel_scope.cancel()
        recorder.finish()
        elapsed = time.perf_counter() - started
    peak = max([peak_rss_bytes(), *rss_samples])
    section = recorder.summary()["http"]
    totals = op_totals(section)
    generator = section["generator"]
    steady: dict[str, Any] = {"window_s": 0.0}
    if len(window) >= 2:
        (t0, g0, s0, c0), (t1, g1, s1, c1) = window[0], window[-1]
        wall = t1 - t0
        in_window = sorted(late for t, late in lags if t0 <= t <= t1)
        steady = {
            "window_s": round(wall, 2),
            "calls": c1 - c0,
            "calls_per_s": round((c1 - c0) / wall, 1),
            "generator_busy": round((g1 - g0) / wall, 3),
            "server_busy": round((s1 - s0) / wall, 3),
            "generator_us_per_call": round((g1 - g0) / (c1 - c0) * 1e6, 1) if c1 > c0 else None,
            "lag_p99_us": in_window[int(0.99 * (len(in_window) - 1))] if in_window else None,
            "lag_max_us": in_window[-1] if in_window else None,
        }
    latency = section["ops"].get("echo", {}).get("latency_us", {})
    errors = totals["errors"] + totals["silent"]
    # Errors are the generator's fault only if it was itself overloaded (busy or late to wake).
    generator_caused = errors if errors and generator.get("saturated") else 0
    lag_p99 = steady.get("lag_p99_us")
    out = {
        "transport": variant,
        "sessions_planned": plan.sessions,
        "rate_per_s": plan.sessions_rate,
        "setup_stage_s": plan.sessions_setup_s,
        "setup_stage_rate_per_s": plan.sessions_setup_rate,
        "duration_s": plan.sessions_duration_s,
        "elapsed_s": round(elapsed, 1),
        "sessions": section["sessions"],
        "all_sessions_open_after_s": round(all_open_at[0], 1) if all_open_at else None,
        "calls": totals,
        "latency_us": {k: latency.get(k) for k in ("p50", "p99", "max")},
        "errors_by_kind": {
            "errors": section["ops"].get("echo", {}).get("errors", {}),
            "silent": section["ops"].get("echo", {}).get("silent", {}),
        },
        "steady": steady,
        "rss_start_bytes": rss_start,
        "rss_peak_bytes": peak,
        "lag_p99_us": lag_p99,
        "run_lag_p99_us": generator.get("lag_p99_us"),
        "run_lag_max_us": generator.get("lag_max_us"),
        "run_generator_cpu_busy": generator.get("cpu_busy"),
        "generator_saturated": generator.get("saturated"),
        "errors_caused_by_generator": generator_caused,
    }
    out["passed"] = {
        "rss": peak < GOAL_RSS_BYTES,
        "lag": lag_p99 is not None and lag_p99 < GOAL_LAG_P99_US,
        "errors": generator_caused == 0,
    }
    return out


# -- case: blob ---------------------------------------------------------------------------------


async def case_blob(variant: str, plan: Plan) -> dict[str, Any]:
    from loadtest.measure.metrics import Recorder
    from loadtest.run.driver import run_scenario

    transport, _ = VARIANTS[variant]
    async with reference_server(variant) as server:
        workload = f'model = "closed"\nsessions = 1\nrequests = {plan.blob_calls}\nwarmup = "0s"\nrequest_timeout = "120s"'
        ops = (
            f'[[ops]]\nname = "blob"\nmethod = "resources/read"\nuri = "blob://{plan.blob_bytes}/{{seed}}"\n'
            "expect = { blob = true }\n"
        )
        scenario = scenario_for(variant, server, workload, ops)
        recorder = Recorder(out_dir=None)
        baseline = rss_bytes()
        reset_ok = reset_peak_rss()
        started = time.perf_counter()
        await run_scenario(scenario, recorder)
        elapsed = time.perf_counter() - started
        peak = peak_rss_bytes()
        recorder.finish()
    section = recorder.summary()[transport]
    totals = op_totals(section)
    increase = max(0, peak - baseline)
    factor = increase / plan.blob_bytes
    intact = totals["count"] == plan.blob_calls and totals["ok"] == totals["count"]
    return {
        "blob_bytes": plan.blob_bytes,
        "calls": totals,
        "elapsed_s": round(elapsed, 2),
        "latency_us": section["ops"].get("blob", {}).get("latency_us", {}).get("max"),
        "rss_baseline_bytes": baseline,
        "rss_peak_bytes": peak,
        "rss_increase_bytes": increase,
        "increase_over_blob": round(factor, 2),
        "peak_reset": reset_ok,
        "intact": intact,
        "passed": intact and factor < GOAL_BLOB_FACTOR,
    }


# -- worker and parent --------------------------------------------------------------------------


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def worker(case: str, variant: str, quick: bool) -> int:
    import anyio

    pin_self()
    plan = Plan.for_mode(quick)
    if case == "cost":
        result = anyio.run(case_cost, variant, plan)
    elif case == "sessions":
        result = anyio.run(case_sessions, variant, plan)
    elif case == "scaling":
        result = anyio.run(case_scaling, variant, plan)
    else:
        result = anyio.run(case_blob, variant, plan)
    print(json.dumps(result), flush=True)
    return 0


def run_worker(case: str, variant: str, quick: bool, timeout: float) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--transports", variant]
    if quick:
        argv.append("--quick")
    started = time.perf_counter()
    try:
        done = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=None, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"worker exited with {done.returncode}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["worker_s"] = round(time.perf_counter() - started, 1)
    return result


def meta(quick: bool) -> dict[str, Any]:
    from importlib.metadata import version

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "pinned": pinning(),
        "mcp": version("mcp"),
        "quick": quick,
        "load_average_start": list(os.getloadavg()),
    }


def verdicts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for variant, c in doc.get("cost", {}).items():
        if "error" in c:
            out.append(
                {
                    "goal": f"{variant}: generator CPU <= {GOAL_RATIO}x server",
                    "figure": c["error"],
                    "passed": False,
                }
            )
            continue
        out.append(
            {
                "goal": f"{variant}: generator CPU/call <= {GOAL_RATIO}x server's",
                "figure": f"{c['ratio']:.3f}x (SDK client {c['sdk_ratio']:.2f}x: {c['times_cheaper_than_sdk']}x cheaper)",
                "passed": c["passed"],
            }
        )
    s = doc.get("sessions")
    if s:
        if "error" in s:
            out.append({"goal": "1000 sessions at 500/s", "figure": s["error"], "passed": False})
        else:
            n = s["sessions_planned"]
            out.append(
                {
                    "goal": f"{n} {s['transport']} sessions: generator peak RSS < {GOAL_RSS_BYTES // 10**6} MB",
                    "figure": f"{s['rss_peak_bytes'] / 1e6:.0f} MB",
                    "passed": s["passed"]["rss"],
                }
            )
            out.append(
                {
                    "goal": f"{n} {s['transport']} sessions at {s['rate_per_s']}/s: event-loop lag p99 < {GOAL_LAG_P99_US // 1000} ms",
                    "figure": f"{_ms(s['lag_p99_us'])} ms in the steady window ({s['steady']['window_s']} s);"
                    f" {_ms(s['run_lag_p99_us'])} ms over the whole run, session set-up included",
                    "passed": s["passed"]["lag"],
                }
            )
            errors = s["calls"]["errors"] + s["calls"]["silent"]
            out.append(
                {
                    "goal": f"{n} {s['transport']} sessions: no errors caused by the generator",
                    "figure": f"{errors} errors of {s['calls']['count']} calls, {s['errors_caused_by_generator']}"
                    f" attributable to the generator; sessions {s['sessions']['opened']} opened,"
                    f" {s['sessions']['failed']} failed",
                    "passed": s["passed"]["errors"],
                }
            )
    scaling = doc.get("scaling", {})
    null, reference = scaling.get("null"), scaling.get("http-json")
    if null is not None:
        if "error" in null:
            out.append({"goal": "--workers 2 scaling", "figure": null["error"], "passed": False})
        else:
            note = ""
            if reference is not None and "error" not in reference:
                note = (
                    f"; the reference server (one core, no spare) x{reference['speedup']}:"
                    f" {reference['by_workers']['1']['calls_per_s']:.0f} -> {reference['by_workers']['2']['calls_per_s']:.0f}"
                )
            out.append(
                {
                    "goal": f"--workers 2: calls/s >= {GOAL_SCALING}x one worker's, server with cores to spare",
                    "figure": f"x{null['speedup']} on the null server"
                    f" ({null['by_workers']['1']['calls_per_s']:.0f} -> {null['by_workers']['2']['calls_per_s']:.0f}"
                    f" calls/s){note}",
                    "passed": null["passed"],
                }
            )
    for variant, b in doc.get("blob", {}).items():
        if "error" in b:
            out.append({"goal": f"{variant}: blob read", "figure": b["error"], "passed": False})
            continue
        mib = b["blob_bytes"] / (1 << 20)
        out.append(
            {
                "goal": f"{variant}: {mib:g} MiB read, RSS increase < {GOAL_BLOB_FACTOR:g}x blob, intact",
                "figure": f"+{b['rss_increase_bytes'] / 1e6:.1f} MB = {b['increase_over_blob']}x,"
                f" {b['calls']['ok']}/{b['calls']['count']} intact",
                "passed": b["passed"],
            }
        )
    return out


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.1f}"


def _print_sessions(s: dict[str, Any], note: str) -> None:
    st, ses = s["steady"], s["sessions"]
    print(
        f"\n{s['sessions_planned']} Streamable HTTP sessions ({s['transport']}, {note}): set-up stage {s['setup_stage_s']} s at"
        f" {s['setup_stage_rate_per_s']}/s, then {s['rate_per_s']}/s for {s['duration_s']} s (open model)"
    )
    print(
        f"  sessions: {ses['opened']} opened, {ses['failed']} failed, all open after"
        f" {s['all_sessions_open_after_s']} s, set-up p50/p99"
        f" {_ms(ses['setup_latency_us']['p50'])}/{_ms(ses['setup_latency_us']['p99'])} ms"
    )
    print(
        f"  calls: {s['calls']['count']}, ok {s['calls']['ok']}, errors {s['calls']['errors']},"
        f" silent {s['calls']['silent']}; latency p50 {_ms(s['latency_us']['p50'])} ms,"
        f" p99 {_ms(s['latency_us']['p99'])} ms (whole run)"
    )
    print(
        f"  steady window {st.get('window_s')} s (every session open, full rate): {st.get('calls_per_s')} calls/s,"
        f" generator busy {st.get('generator_busy')} ({st.get('generator_us_per_call')} us/call),"
        f" server busy {st.get('server_busy')}, lag p99 {_ms(st.get('lag_p99_us'))} ms,"
        f" max {_ms(st.get('lag_max_us'))} ms"
    )
    print(
        f"  generator: peak RSS {s['rss_peak_bytes'] / 1e6:.0f} MB (start {s['rss_start_bytes'] / 1e6:.0f} MB);"
        f" whole-run lag p99 {_ms(s['run_lag_p99_us'])} ms, max {_ms(s['run_lag_max_us'])} ms,"
        f" busy {s['run_generator_cpu_busy']}"
    )


def print_table(doc: dict[str, Any]) -> None:
    cost = doc.get("cost", {})
    if cost:
        print("\nCPU per call at saturation (server on CPU 1, client on CPU 0)")
        head = (
            "transport",
            "client",
            "calls/s",
            "server us/call",
            "client us/call",
            "ratio",
            "srv busy",
            "cli busy",
            "others",
        )
        print("{:<10} {:<10} {:>9} {:>15} {:>15} {:>8} {:>9} {:>9} {:>7}".format(*head))
        for variant, c in cost.items():
            if "error" in c:
                print(f"{variant:<10} ERROR {c['error']}")
                continue
            for who in ("generator", "sdk"):
                r = c[who]
                print(
                    f"{variant:<10} {who:<10} {r['calls_per_s']:>9.0f} {r['server_us_per_call']:>15.1f}"
                    f" {r['client_us_per_call']:>15.1f} {r['ratio']:>8.3f} {r['server_busy']:>9.2f}"
                    f" {r['client_busy']:>9.2f} {r['others_busy'] if r['others_busy'] is not None else '-':>7}"
                )
            print(
                f"{'':<10} -> generator {c['times_cheaper_than_sdk']}x cheaper than the SDK client (ratio of"
                f" ratios); {c['times_less_cpu_per_call_than_sdk']}x less CPU per call"
            )
    for key, note in (
        ("sessions", "verdict"),
        ("sessions_overloaded", "for the record: the server cannot keep up"),
    ):
        s = doc.get(key)
        if s and "error" not in s:
            _print_sessions(s, note)
    blob = doc.get("blob", {})
    if blob:
        print("\nBlob reads (1 session, every byte checked)")
        print(
            f"{'transport':<10} {'blob MB':>8} {'calls':>6} {'intact':>7} {'RSS +MB':>8} {'x blob':>7} {'max ms':>8}"
        )
        for variant, b in blob.items():
            if "error" in b:
                print(f"{variant:<10} ERROR {b['error']}")
                continue
            print(
                f"{variant:<10} {b['blob_bytes'] / 1e6:>8.1f} {b['calls']['count']:>6} {b['calls']['ok']:>7}"
                f" {b['rss_increase_bytes'] / 1e6:>8.1f} {b['increase_over_blob']:>7.2f}"
                f" {(b['latency_us'] or 0) / 1000:>8.0f}"
            )
    scaling = doc.get("scaling", {})
    if scaling:
        print(
            "\nScaling with --workers (closed loop, Streamable HTTP JSON responses; server on CPU 1, generator free)"
        )
        print(
            f"{'server':<10} {'workers':>7} {'calls/s':>9} {'gen us/call':>12} {'srv us/call':>12}"
            f" {'gen cores':>10} {'srv cores':>10} {'others':>7}"
        )
        for target, c in scaling.items():
            if "error" in c:
                print(f"{target:<10} ERROR {c['error']}")
                continue
            for n, r in c["by_workers"].items():
                print(
                    f"{target:<10} {n:>7} {r['calls_per_s']:>9.0f} {r['client_us_per_call']:>12.1f}"
                    f" {r['server_us_per_call']:>12.1f} {r['client_busy']:>10.2f} {r['server_busy']:>10.2f}"
                    f" {r['others_busy'] if r['others_busy'] is not None else '-':>7}"
                )
            print(f"{'':<10} -> 2 workers: x{c['speedup']} the calls/s of one")
    print("\nGoals")
    for v in doc["verdicts"]:
        print(f"  {'PASS' if v['passed'] else 'FAIL'}  {v['goal']}: {v['figure']}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds instead of minutes (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results JSON (default {DEFAULT_OUT})")
    parser.add_argument(
        "--cases", default=",".join(CASES), help="comma-separated: cost,sessions,blob,scaling"
    )
    parser.add_argument(
        "--transports", default=",".join(VARIANTS), help="comma-separated: stdio,sse,http,http-json"
    )
    parser.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    args.transports = [t for t in args.transports.split(",") if t]
    for case in args.cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r} (choose from {', '.join(CASES)})")
    allowed = SCALING_TARGETS if args.worker == "scaling" else tuple(VARIANTS)
    for variant in args.transports:
        if variant not in allowed:
            parser.error(f"unknown transport {variant!r} (choose from {', '.join(allowed)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args.worker, args.transports[0], args.quick)
    started = time.perf_counter()
    doc: dict[str, Any] = {"schema": SCHEMA, "meta": meta(args.quick)}
    doc["goals"] = {
        "generator_to_server_cpu_ratio_max": GOAL_RATIO,
        "sessions_rss_peak_bytes_max": GOAL_RSS_BYTES,
        "sessions_lag_p99_us_max": GOAL_LAG_P99_US,
        "blob_rss_increase_factor_max": GOAL_BLOB_FACTOR,
    }
    slow = 1 if args.quick else 4
    if "cost" in args.cases:
        doc["cost"] = {}
        for variant in args.transports:
            log(f"cost: {variant}")
            doc["cost"][variant] = run_worker("cost", variant, args.quick, 120 * slow)
    if "sessions" in args.cases:
        # The verdict run: JSON responses, which the reference server can serve at the full
        # rate on one core, so what is measured is the generator holding the sessions.
        log(f"sessions: {SESSIONS_VARIANT}")
        doc["sessions"] = run_worker("sessions", SESSIONS_VARIANT, args.quick, 60 * slow)
        if not args.quick:
            # For the record: SSE responses cost the server about twice as much, so at the
            # full rate it falls behind and the generator holds a growing backlog.
            log("sessions: http (SSE responses, server overloaded)")
            doc["sessions_overloaded"] = run_worker("sessions", "http", args.quick, 60 * slow)
    if "scaling" in args.cases:
        doc["scaling"] = {}
        for target in SCALING_TARGETS:
            log(f"scaling: {target}")
            doc["scaling"][target] = run_worker("scaling", target, args.quick, 120 * slow)
    if "blob" in args.cases:
        doc["blob"] = {}
        for variant in args.transports:
            log(f"blob: {variant}")
            doc["blob"][variant] = run_worker("blob", variant, args.quick, 60 * slow)
    doc["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    doc["meta"]["load_average_end"] = list(os.getloadavg())
    doc["verdicts"] = verdicts(doc)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(args.out)
    print_table(doc)
    print(f"\nwritten: {args.out}  ({doc['meta']['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
