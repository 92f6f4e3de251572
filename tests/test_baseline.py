"""`run --baseline DIR`: the new run against a stored baseline, and `--junit F`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest

from loadtest.core.errors import LoadtestError, UsageError
from loadtest.present.baseline import check_against_baseline, write_junit
from loadtest.present.terminal import Style

GOLDEN = Path(__file__).parent / "golden" / "compare"


def _document(path: Path) -> dict[str, object]:
    document: dict[str, object] = orjson.loads((path / "run.json").read_bytes())
    return document


def test_a_slower_single_run_is_inconclusive_against_a_baseline_group() -> None:
    # One new run is thin evidence (issue 15 item 3): the slow-down is shown, with the runs
    # that would settle it, and does not fail the job by itself.
    run = GOLDEN / "b" / "run-01"
    outcome = check_against_baseline(_document(run), run, GOLDEN / "a", min_effect=0.05)
    assert not outcome.regression
    text = outcome.render(Style(colour=False))
    assert "against baseline" in text
    assert "http/echo p50: regressed? thin evidence" in text
    assert "runs a side would settle it" in text


def test_a_new_silent_failure_kind_fails_against_a_baseline_group(tmp_path: Path) -> None:
    run = GOLDEN / "b" / "run-02"
    outcome = check_against_baseline(_document(run), run, GOLDEN / "a", min_effect=0.05)
    assert outcome.regression
    assert "NEW SILENT FAILURES" in outcome.render(Style(colour=False))
    junit = tmp_path / "junit.xml"
    document = {**_document(run), "thresholds": [{"expr": "p99 < 500ms", "value": 13000, "passed": True}]}
    write_junit(junit, document, outcome)
    root = ET.parse(junit).getroot()
    names = [case.get("name") for case in root.iter("testcase")]
    assert names[0] == "p99 < 500ms"
    assert "p50" in names
    assert int(root.get("failures", "0")) == len(root.findall(".//failure")) >= 1


def test_the_same_run_as_its_own_baseline_is_no_regression() -> None:
    run = GOLDEN / "a" / "run-02"
    outcome = check_against_baseline(_document(run), run, run)
    assert not outcome.regression
    assert not outcome.comparison.regressions


def test_junit_without_a_baseline_lists_the_thresholds(tmp_path: Path) -> None:
    junit = tmp_path / "j.xml"
    write_junit(junit, {"thresholds": [{"expr": "silent_failures == 0", "value": 2, "passed": False}]})
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "1"
    assert root.find(".//failure") is not None


def test_a_missing_or_foreign_baseline_is_one_clear_error(tmp_path: Path) -> None:
    run = GOLDEN / "b" / "run-01"
    with pytest.raises(UsageError, match="no such directory"):
        check_against_baseline(_document(run), run, tmp_path / "nope")
    document = _document(run)
    meta = dict(document["meta"])  # type: ignore[call-overload]
    meta["machine_fingerprint"] = "another-machine"
    with pytest.raises(LoadtestError, match="machine fingerprints"):
        check_against_baseline({**document, "meta": meta}, run, GOLDEN / "a")
