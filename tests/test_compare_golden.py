"""Golden tests: committed small runs produce exactly the committed markdown, JSON and JUnit.

The fixtures (tests/golden/compare/{a,b}/run-0N) are shrunk real runs; see
tests/golden/make_fixtures.py. After an intended change of the reports, regenerate with
``MCP_LOADTEST_UPDATE_GOLDEN=1 pytest tests/test_compare_golden.py`` and read the diff.
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from loadtest.cli.main import main

GOLDEN = Path(__file__).parent / "golden" / "compare"
EXPECTED = GOLDEN / "expected"
UPDATE = os.environ.get("MCP_LOADTEST_UPDATE_GOLDEN") == "1"


def _compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, dict[str, str]]:
    monkeypatch.chdir(GOLDEN)
    outs = {"md": tmp_path / "out.md", "json": tmp_path / "out.json", "xml": tmp_path / "out.xml"}
    result = CliRunner().invoke(
        main,
        [
            "compare",
            *args,
            "--markdown",
            str(outs["md"]),
            "--json",
            str(outs["json"]),
            "--junit",
            str(outs["xml"]),
        ],
    )
    return (
        result.exit_code,
        result.output,
        {k: p.read_text(encoding="utf-8") for k, p in outs.items() if p.exists()},
    )


def _check(name: str, text: str) -> None:
    path = EXPECTED / name
    if UPDATE:
        EXPECTED.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("groups", ["a", "b"]),
        ("single", ["a/run-01", "b/run-01"]),
        ("options", ["-a", "a/run-01", "-a", "a/run-02", "-b", "b/run-03", "-b", "b/run-04"]),
    ],
)
def test_reports_match_the_golden_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, args: list[str]
) -> None:
    code, output, files = _compare(tmp_path, monkeypatch, *args)
    # Only the groups (4 runs a side, and a new silent-failure kind) can fail: single runs and
    # 2 against 2 are thin, so their changes are inconclusive and never fail the exit code.
    assert code == {"groups": 1, "single": 0, "options": 0}[name]
    assert set(files) == {"md", "json", "xml"}
    _check(f"{name}.md", files["md"])
    _check(f"{name}.json", files["json"])
    _check(f"{name}.junit.xml", files["xml"])
    report = orjson.loads(files["json"])
    assert report["schema"] == "mcp-loadtest/compare/1"
    # The terminal table says the same thing, without colour off a TTY.
    assert report["headline"] in output
    assert "\033[" not in output
    junit = ET.fromstring(files["xml"])
    cases = junit.findall(".//testcase")
    assert len(cases) == sum(1 for row in report["rows"] if row["gated"])
    assert len(junit.findall(".//failure")) == report["counts"]["regressed"]


def test_groups_verdicts_come_first_and_name_the_new_silent_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _output, files = _compare(tmp_path, monkeypatch, "a", "b")
    assert code == 1
    md = files["md"]
    assert md.index("New silent failures") < md.index("### Verdicts") < md.index("All metrics")
    assert "http/blob: truncated x1 in B, none in A" in md
    assert "Wire-behaviour differences" in md
    assert "`http-delete-session` | SUCCESS → WARNING" in md
    assert len(md.encode()) < 1 << 20
    report = orjson.loads(files["json"])
    p50 = next(r for r in report["rows"] if r["op"] == "echo" and r["metric"] == "p50")
    assert p50["verdict"] == "regressed"
    assert p50["ci95"][0] > 1.0
    assert not p50["thin"]


def test_single_runs_are_marked_thin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, output, files = _compare(tmp_path, monkeypatch, "a/run-01", "b/run-01")
    report = orjson.loads(files["json"])
    thin = [r for r in report["rows"] if r["metric"] == "p50"]
    assert all(r["thin"] for r in thin)
    assert "(thin)" in output


def test_markdown_stays_under_the_limit_by_cutting_the_full_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loadtest.analysis.compare.model import load_side
    from loadtest.analysis.compare.verdicts import compare_sides
    from loadtest.present.markdown import render_markdown

    c = compare_sides(load_side([GOLDEN / "a"]), load_side([GOLDEN / "b"]), resamples=200)
    text = render_markdown(c, max_bytes=3000)
    assert len(text.encode()) <= 3000
    assert "more rows cut" in text


def test_refuses_different_scenarios_with_exit_3_and_says_why(tmp_path: Path) -> None:
    b = tmp_path / "b"
    shutil.copytree(GOLDEN / "b" / "run-01", b)
    doc = orjson.loads((b / "run.json").read_bytes())
    doc["scenario"]["workload"]["rate"] = 123.0
    (b / "run.json").write_bytes(orjson.dumps(doc))
    runner = CliRunner()
    result = runner.invoke(main, ["compare", str(GOLDEN / "a" / "run-01"), str(b)])
    assert result.exit_code == 3
    # The refusal names the key that differs and both values, not two opaque hashes.
    assert "different workloads: workload.rate: 60 in" in result.output
    assert "123 in" in result.output
    assert "--force" in result.output
    assert "Traceback" not in result.output
    forced = runner.invoke(main, ["compare", str(GOLDEN / "a" / "run-01"), str(b), "--force"])
    assert forced.exit_code in (0, 1)
    assert "compared with --force" in forced.output


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "nowhere-a", "nowhere-b"],
        ["compare", str(GOLDEN / "a")],
        ["compare", str(GOLDEN / "a"), str(GOLDEN / "b"), "--min-effect", "lots"],
        ["compare", str(GOLDEN / "a"), "-b", str(GOLDEN / "b")],
        ["report", str(GOLDEN / "a")],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0 or "Usage" in result.output


def test_a_matrix_directory_alone_compares_its_two_sdks(tmp_path: Path) -> None:
    matrix = tmp_path / "m"
    for side, label in (("a", "mcp-1.0"), ("b", "mcp-2.0")):
        shutil.copytree(GOLDEN / side, matrix / label)
    plan = {
        "schema": "mcp-loadtest/matrix/1",
        "sides": [
            {"label": "mcp-1.0", "spec": "1.0", "runs": ["mcp-1.0/run-01"]},
            {"label": "mcp-2.0", "spec": "2.0", "runs": ["mcp-2.0/run-01"]},
        ],
    }
    (matrix / "matrix.json").write_bytes(orjson.dumps(plan))
    result = CliRunner().invoke(main, ["compare", str(matrix)])
    assert result.exit_code == 1
    assert "A: mcp-1.0 (1.0) (4 runs" in result.output
