"""A target that stops answering is named as hung within a short CI run, not passed as clean.

Known-bad: the reference server with ``--hang-after-calls`` (it stops answering from that call
on, while its process and pipes stay up). Known-good: the same server without the flag.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from loadtest.cli.main import main
from loadtest.run.targets.reference import REFERENCE_SERVER

SCENARIO = """
transports = ["{transport}"]
[target]
command = ["{{python}}", "{server}", "--transport", "{{transport}}", "--port", "{{port}}"{fault}]
[workload]
sessions = 4
duration = "10s"
warmup = "3s"
request_timeout = "3s"
[[ops]]
tool = "echo"
arguments = {{ text = "{{nonce}}" }}
expect = {{ text = "{{nonce}}" }}
"""


def run(tmp_path: Path, transport: str, fault: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    path = tmp_path / "scenario.toml"
    path.write_text(SCENARIO.format(transport=transport, server=REFERENCE_SERVER, fault=fault))
    result = CliRunner().invoke(
        main, ["run", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--json"]
    )
    return result.exit_code, json.loads(result.stdout), result.stderr


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_target_that_hangs_during_warmup_is_named_hung_not_passed(tmp_path: Path, transport: str) -> None:
    # It hangs after 20 calls, well inside the warm-up: no measured call ever comes back.
    code, document, stderr = run(tmp_path, transport, ', "--hang-after-calls", "20"')
    section = document["transports"][transport]
    health = section["server"]["health"]
    assert health["hangs"] == 1, health
    hang = next(e for e in health["events"] if e["event"] == "hang")
    assert "no answer for" in hang["detail"]
    assert "the target hung" in section["error"]
    assert "crashed or hung (1x)" in stderr
    assert code == 1


def test_a_target_that_answers_is_not_called_hung(tmp_path: Path) -> None:
    code, document, _ = run(tmp_path, "http", "")
    section = document["transports"]["http"]
    assert section["server"]["health"]["hangs"] == 0
    assert "error" not in section
    assert section["ops"]["echo"]["count"] == section["ops"]["echo"]["ok"] > 0
    assert code == 0
