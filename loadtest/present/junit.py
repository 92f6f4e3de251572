"""The comparison as JUnit XML: one test case per gated metric, for CI test-report views.

A regression is a ``<failure>``; "not enough data", "not comparable" and "inconclusive" (a
change the evidence cannot settle, which never fails) are ``<skipped>``; new silent failures
fail the op's ``silent failures`` case whatever the statistics say.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from loadtest.analysis.compare.verdicts import (
    INCONCLUSIVE,
    METHOD,
    NOT_COMPARABLE,
    NOT_ENOUGH,
    REGRESSED,
    Comparison,
)
from loadtest.present.format import fmt_ci, fmt_p, fmt_ratio, fmt_value, fmt_verdict

__all__ = ["render_junit", "write_junit_report"]

_SKIPPED = (NOT_ENOUGH, NOT_COMPARABLE, INCONCLUSIVE)


def render_junit(comparison: Comparison, *, suite: str = "mcp-loadtest compare") -> str:
    c = comparison
    gated = [row for row in c.rows if row.metric.gated]
    failures = sum(1 for row in gated if row.verdict == REGRESSED)
    skipped = sum(1 for row in gated if row.verdict in _SKIPPED)
    root = ET.Element("testsuites", name=suite, tests=str(len(gated)), failures=str(failures), errors="0")
    suite_el = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(gated)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    properties = ET.SubElement(suite_el, "properties")
    for name, value in (
        ("a", c.a.label),
        ("b", c.b.label),
        ("min_effect", f"{c.min_effect:g}"),
        ("alpha", f"{c.alpha:g}"),
        ("method", METHOD),
        ("evidence", c.evidence_line()),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    silent_by_op = {(item.transport, item.op): item for item in c.new_silent}
    for row in gated:
        case = ET.SubElement(
            suite_el, "testcase", classname=f"{row.transport}.{row.op}", name=row.metric.label, time="0"
        )
        summary = (
            f"{row.key}: A {fmt_value(row.metric, row.a)}, B {fmt_value(row.metric, row.b)}, "
            f"B/A {fmt_ratio(row)} {fmt_ci(row)}, p {fmt_p(row.p)}: {fmt_verdict(row)}"
            + (f" ({row.note})" if row.note else "")
        )
        if row.verdict == REGRESSED:
            failure = ET.SubElement(case, "failure", message=summary, type="regression")
            item = silent_by_op.get((row.transport, row.op)) if row.metric.kind == "count" else None
            failure.text = (
                summary + (f"\nnew silent failures: {item}" if item else "") + f"\nmethod: {row.method}"
            )
        elif row.verdict in _SKIPPED:
            ET.SubElement(case, "skipped", message=summary)
        else:
            ET.SubElement(case, "system-out").text = summary
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit_report(comparison: Comparison, path: Path) -> None:
    path.write_text(render_junit(comparison), encoding="utf-8")
