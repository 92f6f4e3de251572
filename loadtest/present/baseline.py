"""``run --baseline DIR``: the new run against a stored baseline, for nightly CI.

A baseline is a run directory or a group of runs (a directory of run directories). The new
run is side B, the baseline side A; with one run on a side the verdicts rest on a block
bootstrap over per-second intervals and say the evidence is thin. A baseline of several
earlier runs (the last few good nightlies) makes the verdicts sturdier.

Refreshing: copy a good run into the baseline directory (``cp -r results/<run>
results/baseline/``), and drop the oldest when there are more than you want to keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from loadtest.analysis.compare.model import Run, Side, load_side
from loadtest.analysis.compare.verdicts import DEFAULT_MIN_EFFECT, REGRESSED, Comparison, compare_sides
from loadtest.core.errors import UsageError
from loadtest.present.format import fmt_ci, fmt_p, fmt_ratio, fmt_value, fmt_verdict
from loadtest.present.terminal import Style, threshold_line

__all__ = ["BaselineOutcome", "check_against_baseline", "write_junit"]


@dataclass(frozen=True)
class BaselineOutcome:
    """The comparison of a new run (B) with its baseline (A)."""

    comparison: Comparison

    @property
    def regression(self) -> bool:
        """True when the run regressed on a gated metric or has new silent-failure kinds."""
        return self.comparison.regressed

    def render(self, style: Style) -> str:
        """A short block for the end of ``run``: headline, new silent failures, changed metrics."""
        c = self.comparison
        lines = [
            "",
            style.bold(
                f"against baseline {c.a.label} ({len(c.a.runs)} run{'s' if len(c.a.runs) != 1 else ''})"
            ),
        ]
        lines.append((style.red if c.regressed else style.green)(c.headline()))
        lines.extend(style.red(f"  NEW SILENT FAILURES {item}") for item in c.new_silent)
        for row in c.regressions + c.improvements:
            text = (
                f"  {row.key}: {fmt_value(row.metric, row.a)} -> {fmt_value(row.metric, row.b)} "
                f"({fmt_ratio(row)} {fmt_ci(row)}, p {fmt_p(row.p)}) {fmt_verdict(row)}"
            )
            lines.append(style.red(text) if row.verdict == REGRESSED else style.green(text))
        lines.extend(style.dim(f"  warning: {w}") for w in c.warnings)
        return "\n".join(lines)


def check_against_baseline(
    document: Mapping[str, Any],
    run_path: Path,
    baseline: Path,
    *,
    min_effect: float = DEFAULT_MIN_EFFECT,
    force: bool = False,
) -> BaselineOutcome:
    """Compare the run just written (``document``, in ``run_path``) with ``baseline``.

    Raises :class:`~loadtest.core.errors.UsageError` (exit 2) when ``baseline`` holds no run, and
    :class:`~loadtest.core.errors.LoadtestError` (exit 3) when the baseline was recorded with
    another scenario or on another machine (unless ``force``).
    """
    directory = run_path if run_path.is_dir() else run_path.parent
    if not baseline.exists():
        raise UsageError(f"--baseline {baseline}: no such directory; create it by copying a run into it")
    a = load_side([baseline], label=str(baseline))
    b = Side(str(directory), [Run(directory, document, directory.name)])
    return BaselineOutcome(compare_sides(a, b, min_effect=min_effect, force=force))


def write_junit(path: Path, document: Mapping[str, Any], outcome: BaselineOutcome | None = None) -> None:
    """JUnit XML for ``run --junit F``: one case per threshold, plus one per gated metric of the
    baseline comparison when there is one (a regression is a failure)."""
    cases: list[ET.Element] = []
    failures = skipped = 0
    for item in document.get("thresholds") or []:
        case = ET.Element(
            "testcase", classname="mcp-loadtest.scenario.thresholds", name=str(item.get("expr")), time="0"
        )
        message = threshold_line(item)
        if item.get("passed"):
            ET.SubElement(case, "system-out").text = message
        else:
            failures += 1
            ET.SubElement(case, "failure", message=message, type="threshold").text = message
        cases.append(case)
    if outcome is not None:
        c = outcome.comparison
        new_silent = {(i.transport, i.op): i for i in c.new_silent}
        for row in c.rows:
            if not row.metric.gated:
                continue
            case = ET.Element(
                "testcase",
                classname=f"mcp-loadtest.present.baseline.{row.transport}.{row.op}",
                name=row.metric.label,
                time="0",
            )
            message = (
                f"{row.key}: baseline {fmt_value(row.metric, row.a)}, now {fmt_value(row.metric, row.b)}, "
                f"{fmt_ratio(row)} {fmt_ci(row)}, p {fmt_p(row.p)}: {fmt_verdict(row)}"
                + (f" ({row.note})" if row.note else "")
            )
            if row.verdict == REGRESSED:
                failures += 1
                extra = new_silent.get((row.transport, row.op)) if row.metric.kind == "count" else None
                ET.SubElement(case, "failure", message=message, type="regression").text = message + (
                    f"\n{extra}" if extra else ""
                )
            elif row.verdict == "not enough data":
                skipped += 1
                ET.SubElement(case, "skipped", message=message)
            else:
                ET.SubElement(case, "system-out").text = message
            cases.append(case)
    name = "mcp-loadtest run"
    root = ET.Element("testsuites", name=name, tests=str(len(cases)), failures=str(failures), errors="0")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    suite.extend(cases)
    ET.indent(root)
    try:
        path.write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n",
            encoding="utf-8",
        )
    except OSError as exc:
        raise UsageError(f"--junit {path}: cannot write ({exc.strerror or exc})") from None
