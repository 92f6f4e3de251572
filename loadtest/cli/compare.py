"""``mcp-loadtest compare`` and ``mcp-loadtest report`` (registered in :mod:`loadtest.cli.main`).

Exit codes: 0 no regression; 1 a regression on a gated metric, silent failures in B of a
kind A did not have, or a threshold that failed in a run of B; 2 usage error (a path that is not a run, a bad option); 3 the runs cannot
be compared (different scenario hashes or machine fingerprints, without ``--force``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import orjson

from loadtest.analysis.compare.model import Run, Side, load_side, matrix_sides
from loadtest.analysis.compare.verdicts import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, Comparison, compare_sides
from loadtest.analysis.gates import SideGate, any_failed, side_gates
from loadtest.core.errors import UsageError, friendly
from loadtest.core.names import MATRIX_FILE, RUN_FILE
from loadtest.present.compare_terminal import render_comparison
from loadtest.present.gates import add_junit_gates, gates_html, gates_markdown, gates_terminal
from loadtest.present.terminal import Style, render_summary
from loadtest.results.recovery import PARTIAL_NOTE, can_rebuild, rebuild_run

__all__ = ["compare_command", "comparison_gates", "parse_fraction", "report_command", "write_reports"]


def parse_fraction(text: str, what: str = "--min-effect") -> float:
    """``"5%"`` or ``"0.05"`` as 0.05; :class:`UsageError` otherwise."""
    s = text.strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise UsageError(
            f"{what}: expected a percentage like 5% or a fraction like 0.05, got {text!r}"
        ) from None
    if not 0 <= value < 1:
        raise UsageError(f"{what}: expected a value from 0% to below 100%, got {text!r}")
    return value


def _style() -> Style:
    return Style(colour=sys.stdout.isatty() and "NO_COLOR" not in os.environ)


def _sides(
    paths: tuple[Path, ...], a_paths: tuple[Path, ...], b_paths: tuple[Path, ...]
) -> tuple[Side, Side]:
    if a_paths or b_paths:
        if paths or not (a_paths and b_paths):
            raise UsageError("give either A B, or -a PATH... and -b PATH... (each at least once), not both")
        return load_side(list(a_paths)), load_side(list(b_paths))
    if len(paths) == 1 and (paths[0] / MATRIX_FILE).is_file():
        return matrix_sides(paths[0])
    if len(paths) != 2:
        raise UsageError(
            f"expected two paths (A B), a matrix directory, or -a/-b options; got {len(paths)} path(s). "
            "Several runs per side: -a RUN1 -a RUN2 -b RUN3 -b RUN4, or a directory of runs per side"
        )
    return load_side([paths[0]]), load_side([paths[1]])


def write_reports(
    comparison: Comparison,
    *,
    markdown: Path | None = None,
    html: Path | None = None,
    json_path: Path | None = None,
    junit: Path | None = None,
) -> list[Path]:
    """Write the requested report files; returns what was written.

    Every report also shows each side's threshold results (:func:`comparison_gates`): the
    user's gates are absolute, whatever the comparison says.
    """
    written: list[Path] = []
    gates = comparison_gates(comparison)
    try:
        if markdown is not None:
            from loadtest.present.markdown import render_markdown

            markdown.write_text(render_markdown(comparison) + gates_markdown(gates), encoding="utf-8")
            written.append(markdown)
        if html is not None:
            from loadtest.present.html import render_html_comparison

            page = render_html_comparison(comparison)
            # Before the closing tags (the page's own script comes last): one section more.
            cut = page.rfind("<script>")
            cut = cut if cut >= 0 else page.rfind("</body>")
            page = (
                page[:cut] + gates_html(gates) + "\n" + page[cut:] if cut >= 0 else page + gates_html(gates)
            )
            html.write_text(page, encoding="utf-8")
            written.append(html)
        if json_path is not None:
            data = comparison.to_dict()
            if any(side_list for _, side_list in gates):
                # Only when the runs had thresholds: reports of runs without keep their shape.
                data["thresholds"] = {
                    side: [gate.to_dict() for gate in side_list]
                    for side, (_, side_list) in zip(("a", "b"), gates, strict=True)
                }
            json_path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
            written.append(json_path)
        if junit is not None:
            from loadtest.present.junit import render_junit

            junit.write_text(add_junit_gates(render_junit(comparison), gates), encoding="utf-8")
            written.append(junit)
    except OSError as exc:
        raise UsageError(f"{exc.filename}: cannot write ({exc.strerror or exc})") from None
    return written


def comparison_gates(comparison: Comparison) -> list[tuple[str, list[SideGate]]]:
    """Each side's threshold results over its runs, named ``A: label`` and ``B: label``."""
    return [
        (f"{name}: {side.label}", side_gates([run.document for run in side.runs]))
        for name, side in (("A", comparison.a), ("B", comparison.b))
    ]


_OUT = click.Path(path_type=Path, dir_okay=False)


@click.command("compare")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-a",
    "a_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="A run or group of runs for side A (before). Repeat.",
)
@click.option(
    "-b",
    "b_paths",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="A run or group of runs for side B (after). Repeat.",
)
@click.option(
    "--markdown",
    type=_OUT,
    metavar="F",
    help="Write a markdown report (for $GITHUB_STEP_SUMMARY, PR comments).",
)
@click.option("--html", type=_OUT, metavar="F", help="Write a self-contained HTML report with plots.")
@click.option("--json", "json_path", type=_OUT, metavar="F", help="Write the comparison as JSON.")
@click.option("--junit", type=_OUT, metavar="F", help="Write JUnit XML, one test case per gated metric.")
@click.option(
    "--min-effect",
    default=f"{DEFAULT_MIN_EFFECT:.0%}",
    show_default=True,
    metavar="PCT",
    help="Smallest change called a regression or an improvement.",
)
@click.option(
    "--alpha",
    default=DEFAULT_ALPHA,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Significance level.",
)
@click.option(
    "--force", is_flag=True, help="Compare even runs with different scenario hashes or machine fingerprints."
)
@friendly
def compare_command(
    paths: tuple[Path, ...],
    a_paths: tuple[Path, ...],
    b_paths: tuple[Path, ...],
    markdown: Path | None,
    html: Path | None,
    json_path: Path | None,
    junit: Path | None,
    min_effect: str,
    alpha: float,
    force: bool,
) -> None:
    """Compare runs A (before) with runs B (after), per transport x operation.

    A and B are run directories, or groups: a directory of run directories (one matrix SDK
    directory, or repeated runs). A matrix directory alone compares its two SDKs. Several
    paths per side: -a RUN -a RUN -b RUN -b RUN.

    Exit 0: no regression; 1: a regression, new silent failures or a threshold of the
    scenario that failed in a run of B; 2: usage error;
    3: the runs are not comparable (different scenario or machine; see --force).
    """
    effect = parse_fraction(min_effect)
    a, b = _sides(paths, a_paths, b_paths)
    comparison = compare_sides(a, b, min_effect=effect, alpha=alpha, force=force)
    click.echo(render_comparison(comparison, _style()))
    gates = comparison_gates(comparison)
    for line in gates_terminal(gates, _style()):
        click.echo(line)
    for path in write_reports(comparison, markdown=markdown, html=html, json_path=json_path, junit=junit):
        click.echo(f"wrote {path}")
    # A is the reference, judged when it ran; B's own thresholds fail the comparison.
    sys.exit(1 if comparison.regressed or any_failed(gates[1][1]) else 0)


@click.command("report")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--html", type=_OUT, metavar="F", help="Write a self-contained HTML report with plots.")
@friendly
def report_command(run: Path, html: Path | None) -> None:
    """Print RUN's summary table again, and write its HTML report with --html.

    A run that was killed before it wrote run.json is rebuilt from its interval and health
    logs, and said to be partial.
    """
    if run.is_dir() and not (run / RUN_FILE).exists() and can_rebuild(run):
        single = Run(run, rebuild_run(run), run.name)
        click.echo(f"{run}: {PARTIAL_NOTE}", err=True)
    else:
        side = load_side([run])
        if len(side.runs) != 1:
            raise UsageError(
                f"{run}: holds {len(side.runs)} runs; report takes one run directory (use compare for groups)"
            )
        (single,) = side.runs
    click.echo(render_summary(single.document, _style()))
    if html is not None:
        from loadtest.present.html import render_html_run

        try:
            html.write_text(render_html_run(single), encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{html}: cannot write ({exc.strerror or exc})") from None
        click.echo(f"wrote {html}")
