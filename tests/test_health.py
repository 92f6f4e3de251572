"""Server health: the memory verdict, session leaks, crashes and hangs, against real servers.

The verdict's edge cases are checked on synthetic samples (pure arithmetic); everything else
runs the tester against the bundled reference server: as it is, with
``--leak-kb-per-session`` (memory kept per session, never released), ``--exit-after-calls``
(it dies) and ``--hang-after-calls`` (it stops answering).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from loadtest.cli.main import main
from loadtest.core.errors import UsageError
from loadtest.measure.health import (
    GROWING,
    MIN_SESSIONS,
    MIN_SLOPE_WINDOW_S,
    STABLE,
    UNKNOWN,
    Sample,
    assess,
)
from loadtest.protocol.session import open_session
from loadtest.protocol.transports import connect
from loadtest.protocol.transports.http import new_client_session
from loadtest.run.execute import execute
from loadtest.run.targets.reference import REFERENCE_SERVER, free_port, reference_command, start_target
from loadtest.scenario import load_scenario
from loadtest.scenario.threshold_eval import evaluate
from loadtest.scenario.thresholds import parse_threshold

MB = 2**20

# -- the verdict on synthetic samples -----------------------------------------------------------


def series(
    rss: Any, *, n: int = 60, every: float = 1.0, noise: int = 300_000, segment_every: int = 0, seed: int = 1
) -> list[Sample]:
    """``n`` samples ``every`` seconds, RSS ``rss(t, i)`` plus page-sized noise; sessions = 10 per sample."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = i * every
        segment = i // segment_every if segment_every else 0
        jitter = rng.randrange(-noise, noise + 1, 4096) if noise else 0
        out.append(Sample(t, int(rss(t, i)) + jitter, 10, 1, 10 * i, segment))
    return out


def test_steady_growth_after_warm_up_is_growing() -> None:
    # 100 KB per session (10 sessions a sample): the classic leak, after a warm-up ramp.
    samples = series(lambda t, i: 70 * MB + (5 * MB if t > 5 else t * MB) + i * 10 * 100_000, n=80)
    health = assess(samples, warmup_s=10)
    assert health["verdict"] == GROWING, health
    assert health["sessions_released"] is False
    assert health["rss_per_1k_sessions_mb"] == pytest.approx(100_000 * 1000 / MB, rel=0.05)
    assert health["rss_slope_mb_per_h"] == pytest.approx(1_000_000 * 3600 / MB, rel=0.05)


def test_flat_memory_with_allocator_noise_is_stable() -> None:
    samples = series(lambda t, i: 70 * MB + (t * 2 * MB if t < 10 else 20 * MB), noise=600_000)
    health = assess(samples, warmup_s=10)
    assert health["verdict"] == STABLE, health
    assert health["sessions_released"] is True


def test_one_step_up_is_not_a_leak() -> None:
    # A cache that fills once, half-way through: one half grows, the other does not.
    samples = series(lambda t, i: 70 * MB + (30 * MB if t >= 40 else 0), n=80, noise=0)
    health = assess(samples, warmup_s=10)
    assert health["verdict"] == STABLE, health
    assert health["rss_growth_mb"] > 2  # the fit sees the step; the verdict does not call it a leak


def test_restarts_are_not_releases() -> None:
    # Each server process leaks; every 20 samples it is restarted and starts small again. A
    # slope across all samples would be flat; within each process it is not.
    samples = series(lambda t, i: 70 * MB + (i % 20) * 1 * MB, segment_every=20, noise=0)
    assert assess(samples, warmup_s=2)["verdict"] == GROWING
    assert assess(samples, warmup_s=2, per_session=False)["rss_per_1k_sessions_mb"] is None


def test_too_few_samples_after_warm_up_is_unknown() -> None:
    health = assess(series(lambda t, i: 70 * MB + i * MB, n=12), warmup_s=8)
    assert health["verdict"] == UNKNOWN
    assert "warm-up" in health["reason"]
    assert health["rss_slope_mb_per_h"] is None


# -- enough data for a memory figure (issue 15 item 13) ---------------------------------------------


def test_no_per_1k_session_figure_from_two_sessions() -> None:
    # Two sessions and a 3.6 MB step: "+3655 MB per 1k sessions (2 sessions)" was printed.
    samples = [
        Sample(float(i), 70 * MB + (4 * MB if i >= 12 else 0), 10, 1, 1 if i < 12 else 2, 0)
        for i in range(20)
    ]
    health = assess(samples, warmup_s=2)
    assert health["rss_per_1k_sessions_mb"] is None
    assert health["sessions_released"] is None
    evidence = health["evidence"]["rss_per_1k_sessions"]
    assert evidence == {"enough_data": False, "sessions": 1, "needs_sessions": MIN_SESSIONS}
    assert health["verdict"] == UNKNOWN
    assert f"{MIN_SESSIONS} sessions opened after warm-up" in health["reason"]


def test_no_hourly_slope_from_a_fifteen_second_window() -> None:
    # A runtime growing its heap for the first seconds (as Node does): 15 s said "+7,923 MB/h".
    samples = [Sample(i * 0.5, 60 * MB + int(i * 0.5 * 2.2 * MB), 10, 1, None, 0) for i in range(34)]
    health = assess(samples, warmup_s=2)
    assert health["rss_slope_mb_per_h"] is None
    assert health["rss_growth_mb"] is None
    assert health["verdict"] == UNKNOWN
    assert health["evidence"]["rss_slope"]["enough_data"] is False
    assert health["evidence"]["rss_slope"]["needs_window_s"] == MIN_SLOPE_WINDOW_S
    # What would settle it: a window of 60 s after the 2 s warm-up, i.e. a run of 62 s.
    assert "a window of 60s after warm-up (a run of at least 62s)" in health["reason"]
    # Over a long enough window the same climb is a verdict, with its slope.
    long = [Sample(float(i), 60 * MB + int(i * 2.2 * MB), 10, 1, None, 0) for i in range(80)]
    grown = assess(long, warmup_s=2)
    assert grown["verdict"] == GROWING
    assert grown["rss_slope_mb_per_h"] == pytest.approx(2.2 * 3600, rel=0.01)


def test_a_stable_verdict_never_contradicts_its_figures() -> None:
    # A step of 40 MB half-way through 70 s: the fit sees growth; the verdict is stable because
    # it is a step, and the reason says so instead of "within +40 MB (noise floor 2 MB)".
    samples = series(lambda t, i: 70 * MB + (40 * MB if t >= 40 else 0), n=80, noise=0)
    health = assess(samples, warmup_s=5)
    assert health["verdict"] == STABLE, health
    assert health["rss_growth_mb"] > 2
    assert "within" not in health["reason"]
    assert "a step up, not a steady climb" in health["reason"]
    flat = assess(series(lambda t, i: 70 * MB, n=80, noise=200_000), warmup_s=5)
    assert flat["verdict"] == STABLE
    assert "within the noise floor of 2.0 MB" in flat["reason"]


def test_growing_descriptors_are_reported() -> None:
    samples = [Sample(float(i), 70 * MB, 10 + i, 1, 10 * i, 0) for i in range(40)]
    health = assess(samples, warmup_s=5)
    assert health["verdict"] == GROWING
    assert "descriptors" in health["reason"]
    assert health["fds"]["per_1k_sessions"] == pytest.approx(100.0)


def test_health_thresholds_are_per_transport() -> None:
    threshold = parse_threshold("http: rss_per_1k_sessions < 2MB")
    assert (threshold.metric, threshold.value, threshold.unit) == ("rss_per_1k_sessions", 2.0, "MB")
    with pytest.raises(ValueError, match="per transport"):
        parse_threshold("http/echo: rss_slope < 10")


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        ('[workload]\nclose_sessions = "abandonn"', "workload.close_sessions", "did you mean 'abandon'"),
        ('[target]\nurl = "http://127.0.0.1:9/mcp"\nrestart = true', "target.restart", "launched target"),
        ('[health]\nsample_every = "0s"', "health.sample_every", "greater than zero"),
        ('[soak]\nstatus_evry = "1m"', "soak.status_evry", "did you mean 'status_every'"),
        (
            '[target]\ncommand = "srv"\nleak_kb_per_session = 8',
            "target.leak_kb_per_session",
            "reference server",
        ),
    ],
)
def test_bad_soak_and_health_settings_name_file_and_key(
    tmp_path: Path, text: str, key: str, why: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(UsageError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: {key}: "), info.value
    assert why in str(info.value)


def test_health_settings_leave_the_scenario_hash_alone(tmp_path: Path) -> None:
    # How a run is watched is not what it measures: runs with and without stay comparable.
    plain = tmp_path / "plain.toml"
    plain.write_text('[workload]\nduration = "5s"\n')
    watched = tmp_path / "watched.toml"
    watched.write_text('[workload]\nduration = "5s"\n[health]\nidle = "3s"\n[soak]\nstatus_every = "10s"\n')
    assert load_scenario(plain).scenario_hash == load_scenario(watched).scenario_hash
    assert load_scenario(watched).to_dict()["soak"] == {"status_every": 10.0}


# -- session leaks, against the real reference server -------------------------------------------

LEAK_KB = 64
CHURN = """
transports = ["sse", "http"]
[target]
leak_kb_per_session = {leak}
[workload]
sessions = 4
duration = "8s"
warmup = "1s"
churn = 1
[health]
warmup = "2s"
idle = "1s"
[[ops]]
tool = "echo"
arguments = {{ text = "{{nonce}}" }}
expect = {{ text = "{{nonce}}" }}
"""


async def churn(tmp_path: Path, leak: int) -> dict[str, Any]:
    path = tmp_path / "churn.toml"
    path.write_text(CHURN.format(leak=leak))
    (tmp_path / "run").mkdir()
    outcome = await execute(load_scenario(path), tmp_path / "run")
    assert outcome.failure is None
    transports: dict[str, Any] = outcome.document["transports"]
    return transports


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_server_that_keeps_memory_per_session_is_reported_as_leaking(tmp_path: Path) -> None:
    transports = await churn(tmp_path, LEAK_KB)
    for transport in ("sse", "http"):
        health = transports[transport]["server"]["health"]
        assert transports[transport]["ops"]["echo"]["errors"] == {}, transport
        assert health["verdict"] == GROWING, (transport, health)
        assert health["sessions_released"] is False, transport
        assert health["sessions_in_window"] >= 100, transport
        # 64 KiB kept per session is 62.5 MiB per 1000; the server's own share comes on top.
        assert 50 < health["rss_per_1k_sessions_mb"] < 80, (transport, health)
        assert health["idle"]["rss_after_bytes"] > health["idle"]["rss_before_bytes"] - 4 * MB
        assert (tmp_path / "run" / f"health-{transport}.jsonl").is_file()


@pytest.mark.slow
@pytest.mark.anyio
async def test_the_reference_server_releases_closed_sessions(tmp_path: Path) -> None:
    # Legacy SSE: the client drops the stream; Streamable HTTP: DELETE.
    transports = await churn(tmp_path, 0)
    for transport in ("sse", "http"):
        health = transports[transport]["server"]["health"]
        assert health["verdict"] == STABLE, (transport, health)
        assert health["sessions_released"] is True, transport
        assert health["sessions_in_window"] >= 100, transport
        assert abs(health["rss_per_1k_sessions_mb"]) < 2, (transport, health)


@pytest.mark.anyio
@pytest.mark.parametrize("delete", [True, False], ids=["delete", "abandon"])
async def test_an_abandoned_session_is_left_open_on_the_server(delete: bool) -> None:
    # close_sessions = "abandon": no DELETE, so the server still knows the session afterwards.
    port = free_port()
    command = reference_command("http", port=port)
    async with start_target("http", command=command, url=None, port=port) as endpoint:
        assert endpoint.url is not None
        http = new_client_session()
        try:
            async with (
                connect("http", url=endpoint.url, http=http, delete_on_close=delete) as channel,
                open_session(channel) as session,
            ):
                hello = await session.initialize()
            headers = {
                "Mcp-Session-Id": str(channel.info.session_id),
                "MCP-Protocol-Version": hello.protocol_version,
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            }
            with anyio.fail_after(10):
                ping = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
                async with http.post(endpoint.url, data=ping, headers=headers) as resp:
                    status = resp.status
        finally:
            await http.close()
    assert status == (404 if delete else 200)


# -- crashes and hangs ----------------------------------------------------------------------------

FAULTY = """
transports = {transports}
[target]
command = ["{{python}}", "{server}", "--transport", "{{transport}}", "--port", "{{port}}", "{fault}", "{after}"]
restart = {restart}
[workload]
model = "open"
rate = "40/s"
sessions = 2
max_in_flight = 0
duration = "{duration}"
warmup = "0.5s"
request_timeout = "0.5s"
[health]
hang_after = "1.5s"
[[ops]]
tool = "echo"
arguments = {{ text = "{{nonce}}" }}
expect = {{ text = "{{nonce}}" }}
"""


def faulty(
    tmp_path: Path, transports: list[str], fault: str, after: int, restart: bool, duration: str
) -> Path:
    path = tmp_path / "faulty.toml"
    text = FAULTY.format(
        transports=str(transports).replace("'", '"'),
        server=REFERENCE_SERVER,
        fault=fault,
        after=after,
        restart=str(restart).lower(),
        duration=duration,
    )
    path.write_text(text)
    return path


def test_a_crash_ends_the_transport_cleanly_with_results_and_exit_1(tmp_path: Path) -> None:
    path = faulty(tmp_path, ["http"], "--exit-after-calls", 60, restart=False, duration="30s")
    result = CliRunner().invoke(
        main, ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--json"]
    )
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    http = document["transports"]["http"]
    health = http["server"]["health"]
    assert health["crashes"] == 1
    assert health["restarts"] == 0
    (crash,) = [e for e in health["events"] if e["event"] == "crash"]
    assert "exited with code 70" in crash["detail"]
    assert crash["at"].startswith(document["meta"]["started"][:10])
    # It died at the 60th call (1.5 s in, at 40/s), and the transport ended there, not at 30 s.
    assert http["measured_s"] < 15
    assert 0 < http["ops"]["echo"]["ok"] < 60
    assert "set target.restart = true" in http["error"]
    assert "crashed or hung (1x)" in result.stderr


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_a_crashed_target_is_relaunched_and_the_restarts_counted(
    tmp_path: Path, transport: str
) -> None:
    path = faulty(tmp_path, [transport], "--exit-after-calls", 40, restart=True, duration="8s")
    outcome = await execute(load_scenario(path), tmp_path)
    section = outcome.document["transports"][transport]
    health = section["server"]["health"]
    assert health["crashes"] >= 1
    assert health["restarts"] >= 1
    assert outcome.target_failures >= 1
    # The run went on to its planned end, and answers came from the relaunched server too.
    assert section["measured_s"] >= 7.9
    assert section["ops"]["echo"]["ok"] > 40 * (2 if transport == "stdio" else 1)
    kinds = [e["event"] for e in health["events"]]
    assert kinds.index("crash") < kinds.index("restart")


@pytest.mark.anyio
async def test_a_hung_target_is_detected_and_relaunched(tmp_path: Path) -> None:
    path = faulty(tmp_path, ["http"], "--hang-after-calls", 40, restart=True, duration="10s")
    outcome = await execute(load_scenario(path), tmp_path)
    health = outcome.document["transports"]["http"]["server"]["health"]
    assert health["hangs"] >= 1
    assert health["crashes"] == 0  # killed by us for hanging: not a crash
    assert health["restarts"] >= 1
    hang = next(e for e in health["events"] if e["event"] == "hang")
    assert "no answer for" in hang["detail"]
    assert outcome.document["transports"]["http"]["ops"]["echo"]["silent"].get("lost", 0) >= 3


def test_leak_flag_refuses_stdio() -> None:
    out = subprocess.run(
        [sys.executable, str(REFERENCE_SERVER), "--transport", "stdio", "--leak-kb-per-session", "8"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert out.returncode == 2
    assert "sse and streamable-http" in out.stderr


def test_a_memory_threshold_on_too_little_data_has_no_figure_to_pass_on() -> None:
    # Two sessions: the old "+3655 MB per 1k sessions" failed `rss_per_1k_sessions < 2`, and a
    # lucky one passed it. Now there is no figure: the threshold says "no data" (whatever the
    # thresholds decide to do with that, it is not a pass on a number that means nothing).
    samples = [
        Sample(float(i), 70 * MB + (4 * MB if i >= 12 else 0), 10, 1, 1 if i < 12 else 2, 0)
        for i in range(20)
    ]
    health = assess(samples, warmup_s=2)
    (result,) = evaluate(
        ["http: rss_per_1k_sessions < 2"], {"http": {"server": {"health": health}, "ops": {}}}
    )
    assert result.value is None
    assert not result.passed
    assert "no rss_per_1k_sessions measured in http" in result.reason
    assert health["evidence"]["rss_per_1k_sessions"]["enough_data"] is False
