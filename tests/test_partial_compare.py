"""A run that stopped early is flagged wherever it is compared, and is no baseline reference.

The runs are the recorded golden runs (real runs of the reference server); one copy is marked
partial the way an interrupted run (``meta.partial`` and the top-level note) or a rebuilt one
(the top-level note) is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from loadtest.analysis.compare.model import load_side
from loadtest.analysis.compare.verdicts import compare_sides
from loadtest.present.baseline import check_against_baseline

GOLDEN = Path(__file__).resolve().parent / "golden" / "compare"
NOTE = "interrupted: measured http 4.0 s of 30 s"


def _copy(run: str, to: Path, *, partial: bool) -> Path:
    target = to / run.replace("/", "-")
    shutil.copytree(GOLDEN / run, target)
    if partial:
        path = target / "run.json"
        document = json.loads(path.read_text(encoding="utf-8"))
        document["partial"] = NOTE
        document["meta"]["partial"] = True
        path.write_text(json.dumps(document), encoding="utf-8")
    return target


def test_a_partial_run_is_flagged_in_the_comparison(tmp_path: Path) -> None:
    whole = load_side([_copy("a/run-01", tmp_path, partial=False)])
    partial = load_side([_copy("b/run-01", tmp_path, partial=True)])
    flagged = [w for w in compare_sides(whole, partial).warnings if "partial run" in w]
    assert len(flagged) == 1
    assert NOTE in flagged[0]
    # Two whole runs: nothing flagged.
    other = load_side([_copy("b/run-02", tmp_path, partial=False)])
    assert not [w for w in compare_sides(whole, other).warnings if "partial run" in w]


def test_a_partial_baseline_run_is_skipped_and_said_so(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline"
    baseline.mkdir()
    stopped = _copy("a/run-01", baseline, partial=True)
    kept = _copy("a/run-02", baseline, partial=False)
    new = _copy("b/run-01", tmp_path, partial=False)
    document = json.loads((new / "run.json").read_text(encoding="utf-8"))
    outcome = check_against_baseline(document, new, baseline)
    assert outcome.comparison is not None
    assert [run.path for run in outcome.comparison.a.runs] == [kept]
    assert outcome.skipped == (f"{stopped}: a partial run ({NOTE})",)
