"""``run --baseline DIR``: the new run against a stored baseline, for nightly CI.

A baseline is a run directory or a group of runs (a directory of run directories). The new
run is side B, the baseline side A; with one run on a side the verdicts rest on a block
bootstrap over per-second intervals and say the evidence is thin. A baseline of several
earlier runs (the last few good nightlies) makes the verdicts sturdier.

Refreshing: copy a good run into the baseline directory (``cp -r results/<run>
results/baseline/``), and drop the oldest when there are more than you want to keep.

Baseline runs that cannot be compared with the new one (another workload, CPU model, core
count or Python; see ``analysis.compare.model.MUST_MATCH``) are skipped with a line saying
why; a kernel update only warns. With none left the run is not compared (and not failed for
it): the nightly job goes on, and its good runs make the new baseline. ``--force`` compares
with every baseline run regardless.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from loadtest.analysis.compare.model import Run, Side, load_side, mismatches
from loadtest.analysis.compare.verdicts import DEFAULT_MIN_EFFECT, REGRESSED, Comparison, compare_sides
from loadtest.core.errors import LoadtestError, UsageError
from loadtest.present.format import fmt_ci, fmt_p, fmt_ratio, fmt_value, fmt_verdict
from loadtest.present.terminal import Style, threshold_line, totals_line

__all__ = ["BaselineOutcome", "check_against_baseline", "run_markdown", "write_junit", "write_markdown"]


@dataclass(frozen=True)
class BaselineOutcome:
    """The comparison of a new run (B) with its baseline (A), or why there is none.

    Baseline runs that cannot be compared with the new one (another workload, another CPU
    model or core count, another Python) are left out and listed in ``skipped``; with none
    left, ``comparison`` is None and ``note`` says why. Either way the run's own thresholds
    still decide, and the JUnit file and summary are still written: a nightly job whose runner
    changed CPU model must not stay red for ever, it says so and starts a new baseline.
    """

    comparison: Comparison | None
    label: str = ""
    skipped: tuple[str, ...] = ()
    note: str = ""
    #: Set when the baseline could not be read at all (its exit code decides the run's).
    error: LoadtestError | None = None

    @property
    def regression(self) -> bool:
        """True when the run regressed on a gated metric or has new silent-failure kinds."""
        return self.comparison is not None and self.comparison.regressed

    def render(self, style: Style) -> str:
        """A short block for the end of ``run``: headline, new silent failures, changed metrics."""
        c = self.comparison
        if c is None:
            lines = [
                "",
                style.bold(f"against baseline {self.label}"),
                style.red(f"not compared: {self.note}"),
            ]
            lines.extend(style.dim(f"  skipped {item}") for item in self.skipped)
            return "\n".join(lines)
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
        # A change one run cannot settle is shown, with the runs that would (it never fails).
        lines.extend(style.dim(f"  {row.key}: {row.note}") for row in c.inconclusive)
        lines.extend(style.dim(f"  skipped {item}") for item in self.skipped)
        lines.extend(style.dim(f"  warning: {w}") for w in c.warnings)
        return "\n".join(lines)

    def markdown(self) -> str:
        """The same for a CI step summary: the comparison's markdown report, or why there is none."""
        skipped = "".join(f"- skipped {item}\n" for item in self.skipped)
        if self.comparison is None:
            return f"## mcp-loadtest: not compared with the baseline\n\n{self.note}\n\n{skipped}"
        from loadtest.present.markdown import render_markdown

        return render_markdown(self.comparison) + (f"\n{skipped}" if skipped else "")


def _why(reasons: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{key} {mine!r} here, {theirs!r} there" for key, (mine, theirs) in reasons.items())


def check_against_baseline(
    document: Mapping[str, Any],
    run_path: Path,
    baseline: Path,
    *,
    min_effect: float = DEFAULT_MIN_EFFECT,
    force: bool = False,
) -> BaselineOutcome:
    """Compare the run just written (``document``, in ``run_path``) with ``baseline``.

    Baseline runs recorded with another workload or on another kind of machine are skipped
    (listed in the outcome), unless ``force``: then all are compared and the differences are
    warnings. Raises :class:`~loadtest.core.errors.UsageError` (exit 2) when ``baseline`` does
    not exist; a baseline that holds no usable run gives an outcome without a comparison.
    """
    directory = run_path if run_path.is_dir() else run_path.parent
    if not baseline.exists():
        raise UsageError(f"--baseline {baseline}: no such directory; create it by copying a run into it")
    label = str(baseline)
    try:
        a = load_side([baseline], label=label)
    except LoadtestError as exc:
        return BaselineOutcome(None, label, note=str(exc), error=exc if isinstance(exc, UsageError) else None)
    new = Run(directory, document, directory.name)
    b = Side(str(directory), [new])
    skipped: list[str] = []
    if not force:
        keep = []
        for run in a.runs:
            reasons = mismatches(new, run)
            if reasons:
                skipped.append(f"{run.path}: not comparable ({_why(reasons)})")
            elif run.partial:
                # A stopped run is no reference for a whole one.
                skipped.append(f"{run.path}: a partial run ({run.partial})")
            else:
                keep.append(run)
        if not keep:
            note = (
                f"none of the {len(a.runs)} baseline run(s) is comparable with this one (listed below); "
                "this run can start a new baseline, or use --force to compare anyway"
            )
            return BaselineOutcome(None, label, tuple(skipped), note)
        a = Side(a.label, keep, a.skipped)
    comparison = compare_sides(a, b, min_effect=min_effect, force=force)
    return BaselineOutcome(comparison, label, tuple(skipped))


def write_junit(path: Path, document: Mapping[str, Any], outcome: BaselineOutcome | None = None) -> None:
    """JUnit XML for ``run --junit F``: one case per threshold, plus one per gated metric of the
    baseline comparison when there is one (a regression is a failure)."""
    cases: list[ET.Element] = []
    failures = skipped = errors = 0
    if document.get("error"):
        # The run could not be carried out: one error case says why, above thresholds without data.
        case = ET.Element("testcase", classname="mcp-loadtest.run", name="run", time="0")
        ET.SubElement(case, "error", message=str(document["error"]), type="run").text = str(document["error"])
        cases.append(case)
        errors += 1
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
    if outcome is not None and outcome.comparison is None:
        case = ET.Element("testcase", classname="mcp-loadtest.present.baseline", name="baseline", time="0")
        message = f"not compared with the baseline: {outcome.note}"
        if outcome.error is not None:
            failures += 1
            ET.SubElement(case, "failure", message=message, type="baseline").text = message
        else:
            skipped += 1
            ET.SubElement(case, "skipped", message=message).text = "\n".join(outcome.skipped)
        cases.append(case)
    if outcome is not None and outcome.comparison is not None:
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
    root = ET.Element(
        "testsuites", name=name, tests=str(len(cases)), failures=str(failures), errors=str(errors)
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(failures),
        errors=str(errors),
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


def run_markdown(document: Mapping[str, Any], outcome: BaselineOutcome | None = None) -> str:
    """``run --markdown F``: the run's thresholds and totals, then the baseline comparison."""
    thresholds = list(document.get("thresholds") or [])
    failed = [item for item in thresholds if not item.get("passed")]
    title = "🔴 threshold failed" if failed else "✅ thresholds passed" if thresholds else "no thresholds"
    if document.get("error"):
        title = "🔴 could not run"
    lines = [f"## mcp-loadtest run: {title}", ""]
    if document.get("error"):
        lines += [f"**{document['error']}**", ""]
    lines.append(totals_line(document.get("totals") or {}, Style(colour=False)))
    if thresholds:
        lines += ["", "| | threshold | result |", "|---|---|---|"]
        for item in thresholds:
            icon = "✅" if item.get("passed") else "🔴"
            text = threshold_line(item)[len(str(item.get("expr"))) :].strip().replace("|", "\\|")
            lines.append(f"| {icon} | `{item.get('expr')}` | {text} |")
    text = "\n".join(lines) + "\n"
    if outcome is not None:
        text += "\n" + outcome.markdown()
    return text


def write_markdown(path: Path, document: Mapping[str, Any], outcome: BaselineOutcome | None = None) -> None:
    """Write :func:`run_markdown` to ``path`` (a CI step summary); one clear line if it cannot."""
    try:
        path.write_text(run_markdown(document, outcome), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--markdown {path}: cannot write ({exc.strerror or exc})") from None
