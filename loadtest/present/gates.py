"""Threshold results per side (``matrix``, ``compare``): terminal, markdown, HTML and JUnit."""

from __future__ import annotations

import html
from collections.abc import Sequence
from xml.etree import ElementTree as ET

from loadtest.analysis.gates import SideGate
from loadtest.present.terminal import Style, threshold_line

__all__ = ["add_junit_gates", "gates_html", "gates_markdown", "gates_terminal"]

#: A side as the reports name it, with its gates.
Named = tuple[str, Sequence[SideGate]]


def _exprs(sides: Sequence[Named]) -> list[str]:
    return list(dict.fromkeys(gate.expr for _, gates in sides for gate in gates))


def _cell(gate: SideGate | None) -> str:
    if gate is None:
        return "-"
    if gate.passed:
        return f"pass ({gate.runs}/{gate.runs} runs)"
    return f"FAIL in {gate.failed}/{gate.runs} runs"


def _detail(gate: SideGate) -> str:
    """What the worst run measured: ``no data — ...`` or ``measured 3 (worst: http/echo)``."""
    line = threshold_line(gate.worst)
    return line[len(gate.expr) :].strip() if line.startswith(gate.expr) else line


def gates_terminal(sides: Sequence[Named], style: Style) -> list[str]:
    """A table, threshold by side, then one line per failure with what was measured."""
    exprs = _exprs(sides)
    if not exprs:
        return []
    by_side = [{gate.expr: gate for gate in gates} for _, gates in sides]
    rows = [["threshold", *(label for label, _ in sides)]]
    rows += [[expr, *(_cell(gates.get(expr)) for gates in by_side)] for expr in exprs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["", style.bold("thresholds, per side (every run must pass)")]
    for n, row in enumerate(rows):
        text = "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        failed = any(cell.startswith("FAIL") for cell in row[1:])
        lines.append(style.bold(text) if n == 0 else style.red(text) if failed else text)
    for label, gates in sides:
        for gate in gates:
            if not gate.passed:
                lines.append(style.red(f"  FAIL {label}: {gate.expr}: {_detail(gate)}"))
    return lines


def gates_markdown(sides: Sequence[Named]) -> str:
    """A ``### Thresholds`` section (empty string when the runs had none)."""
    exprs = _exprs(sides)
    if not exprs:
        return ""
    by_side = [{gate.expr: gate for gate in gates} for _, gates in sides]
    failed = any(not gate.passed for _, gates in sides for gate in gates)
    lines = [
        "",
        "### " + ("🔴 " if failed else "") + "Thresholds (every run must pass)",
        "",
        "| threshold | " + " | ".join(label.replace("|", "\\|") for label, _ in sides) + " |",
        "|---|" + "---|" * len(sides),
    ]
    for expr in exprs:
        cells = []
        for gates in by_side:
            gate = gates.get(expr)
            cell = _cell(gate)
            if gate is not None and not gate.passed:
                cell = f"🔴 {cell}: {_detail(gate)}"
            cells.append(cell.replace("|", "\\|"))
        lines.append(f"| `{expr}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def gates_html(sides: Sequence[Named]) -> str:
    """The same table as an HTML section (empty string when the runs had none)."""
    exprs = _exprs(sides)
    if not exprs:
        return ""
    by_side = [{gate.expr: gate for gate in gates} for _, gates in sides]
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in sides)
    body = []
    for expr in exprs:
        cells = []
        for gates in by_side:
            gate = gates.get(expr)
            text = _cell(gate) + (f": {_detail(gate)}" if gate is not None and not gate.passed else "")
            style = ' style="color:#b00;font-weight:bold"' if gate is not None and not gate.passed else ""
            cells.append(f"<td{style}>{html.escape(text)}</td>")
        body.append(f"<tr><td><code>{html.escape(expr)}</code></td>{''.join(cells)}</tr>")
    return (
        '<section id="thresholds"><h2>Thresholds (every run must pass)</h2>'
        f"<table><thead><tr><th>threshold</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></section>"
    )


def add_junit_gates(xml_text: str, sides: Sequence[Named]) -> str:
    """``xml_text`` (a JUnit report) with a ``thresholds`` suite: one case per side x threshold."""
    root = ET.fromstring(xml_text)
    cases = [(label, gate) for label, gates in sides for gate in gates]
    if not cases:
        return xml_text
    failures = sum(1 for _, gate in cases if not gate.passed)
    suite = ET.SubElement(
        root, "testsuite", name="thresholds", tests=str(len(cases)), failures=str(failures), errors="0"
    )
    for label, gate in cases:
        case = ET.SubElement(suite, "testcase", classname=f"thresholds.{label}", name=gate.expr, time="0")
        message = f"{label}: {gate.expr}: {_cell(gate)}; {_detail(gate)}"
        if gate.passed:
            ET.SubElement(case, "system-out").text = message
        else:
            ET.SubElement(case, "failure", message=message, type="threshold").text = message
    for key in ("tests", "failures"):
        total = sum(int(s.get(key, "0")) for s in root.iter("testsuite"))
        root.set(key, str(total))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
