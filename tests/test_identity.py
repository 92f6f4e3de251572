"""Which runs are comparable: the workload asked of the target, not where the target lives.

An A/B of two builds of one's own server (``--target-cmd /a/...`` against ``/b/...``) must
compare, with the target's difference in the report's header; a refusal names the keys that
differ; runs written before ``workload_hash`` existed compare with new ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from loadtest.cli.main import main
from loadtest.run.targets.reference import REFERENCE_SERVER
from loadtest.scenario import load_scenario
from loadtest.scenario.identity import differing_keys

GOLDEN = Path(__file__).parent / "golden" / "compare"
CLI = [sys.executable, "-m", "loadtest"]


def _scenario(tmp_path: Path, name: str, target: str, rate: str = "50/s") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'transports = ["http"]\n[target]\n{target}\n[workload]\nmodel = "open"\nrate = "{rate}"\n'
        '[[ops]]\nmethod = "ping"\n'
    )
    return path


def test_the_workload_hash_ignores_where_the_target_lives(tmp_path: Path) -> None:
    a = load_scenario(_scenario(tmp_path, "a", 'command = "/opt/v1/server --port {port}"'))
    b = load_scenario(_scenario(tmp_path, "b", 'command = "/opt/v2/server --port {port}"'))
    url = load_scenario(_scenario(tmp_path, "c", 'url = "http://127.0.0.1:8000/mcp"'))
    slow = load_scenario(_scenario(tmp_path, "d", "delay_ms = 5"))
    assert a.scenario_hash != b.scenario_hash  # the older hash: target included, kept as it was
    assert a.workload_hash == b.workload_hash == url.workload_hash == slow.workload_hash
    faster = load_scenario(_scenario(tmp_path, "e", 'command = "/opt/v1/server"', rate="80/s"))
    assert faster.workload_hash != a.workload_hash


def test_differing_keys_are_dotted_paths_with_both_values() -> None:
    a = {"workload": {"rate": 60.0}, "ops": [{"arguments": {"text": "x"}}]}
    b = {"workload": {"rate": 80.0}, "ops": [{"arguments": {"text": "y"}}], "extra": 1}
    assert differing_keys(a, b) == {
        "workload.rate": (60.0, 80.0),
        "ops[0].arguments.text": ("x", "y"),
        "extra": (None, 1),
    }
    assert differing_keys(a, b, skip_absent=True) == {
        "workload.rate": (60.0, 80.0),
        "ops[0].arguments.text": ("x", "y"),
    }


def _variant(tmp_path: Path, name: str, source: Path, **changes: Any) -> Path:
    target = tmp_path / name
    shutil.copytree(source, target)
    document = json.loads((target / "run.json").read_text())
    for dotted, value in changes.items():
        where = document
        *path, last = dotted.split("__")
        for key in path:
            where = where[key]
        where[last] = value
    (target / "run.json").write_text(json.dumps(document))
    return target


def test_an_old_run_and_a_new_one_of_another_build_compare_with_the_target_in_the_header(
    tmp_path: Path,
) -> None:
    # The golden runs predate workload_hash; B gets another command and another old-style
    # scenario hash (the target was in it), as a run of a second build would have.
    a = _variant(tmp_path, "a", GOLDEN / "a" / "run-02", scenario__target__command="/opt/v1/server")
    b = _variant(
        tmp_path,
        "b",
        GOLDEN / "a" / "run-03",
        scenario__target__command="/opt/v2/server",
        meta__scenario_hash="0123456789abcdef",
        meta__workload_hash="fedcba9876543210",
    )
    markdown = tmp_path / "report.md"
    result = CliRunner().invoke(main, ["compare", str(a), str(b), "--markdown", str(markdown)])
    assert result.exit_code in (0, 1), result.output
    assert "refusing" not in result.output
    # In the header, right under the sides, not among the warnings at the end.
    lines = result.output.splitlines()
    b_line = next(i for i, line in enumerate(lines) if line.startswith("B: "))
    assert lines[b_line + 1].startswith("target differs: target.command: '/opt/v1/server' in")
    assert "'/opt/v2/server' in" in lines[b_line + 1]
    assert "warning: the target differs" not in result.output
    text = markdown.read_text()
    assert "- **target differs**: target.command: '/opt/v1/server' in" in text
    assert text.index("target differs") < text.index("minimum effect")


def test_a_refusal_names_every_key_that_differs(tmp_path: Path) -> None:
    a = GOLDEN / "a" / "run-02"
    b = _variant(tmp_path, "b", GOLDEN / "a" / "run-03", scenario__workload__sessions=9, meta__cores=8)
    result = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert result.exit_code == 3
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert "different workloads: workload.sessions: 4 in" in line
    assert "9 in" in line
    assert "different machines: cores: 2 in" in line
    assert "--force" in line


def test_two_builds_of_a_server_at_different_paths_compare_end_to_end(tmp_path: Path) -> None:
    runs = []
    for build in ("v1", "v2"):
        home = tmp_path / build
        home.mkdir()
        shutil.copy(REFERENCE_SERVER, home / "server.py")
        done = subprocess.run(
            [
                *CLI,
                "run",
                "--transport",
                "http",
                "--requests",
                "150",
                "--target-cmd",
                f"{{python}} {home / 'server.py'} --transport {{transport}} --port {{port}}",
                "--out",
                str(tmp_path / "results" / build),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        (run,) = (tmp_path / "results" / build).iterdir()
        runs.append(run)
    a, b = (json.loads((run / "run.json").read_text()) for run in runs)
    assert a["meta"]["workload_hash"] == b["meta"]["workload_hash"]
    assert a["meta"]["scenario_hash"] != b["meta"]["scenario_hash"]
    result = CliRunner().invoke(main, ["compare", str(runs[0]), str(runs[1])])
    assert result.exit_code in (0, 1), result.output
    assert "target differs: target.command:" in result.output
    assert "v1/server.py" in result.output
