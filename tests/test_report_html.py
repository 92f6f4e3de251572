"""The HTML reports: self-contained, with plots, and they render in a real headless browser.

The browser test needs Debian's ``chromium`` (``apt-get install -y chromium``); it is skipped
without it, unless ``MCP_LOADTEST_REQUIRE_CHROMIUM=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from loadtest.analysis.compare.model import load_side
from loadtest.analysis.compare.verdicts import compare_sides
from loadtest.cli.main import main
from loadtest.present.html import render_html_comparison, render_html_run

GOLDEN = Path(__file__).parent / "golden" / "compare"


def _comparison_html() -> str:
    return render_html_comparison(
        compare_sides(load_side([GOLDEN / "a"]), load_side([GOLDEN / "b"]), resamples=200)
    )


def _assert_self_contained(html: str) -> None:
    # The only URL is the SVG namespace, which is a name, not a fetch.
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)


def test_comparison_html_has_every_plot_and_the_tables() -> None:
    html = _comparison_html()
    _assert_self_contained(html)
    charts = html.count('<svg class="chart"')
    # 2 ops x percentile curves + latency, throughput and memory for the one transport.
    assert charts == 5
    assert html.count("<polyline") >= 2 * 2 + 4 * 2 * 3
    for title in (
        "http/echo: latency by percentile",
        "http: latency per second",
        "http: throughput",
        "http: server memory",
    ):
        assert title in html
    assert ">99%<" in html  # the nines axis
    assert "New silent failures in B" in html
    assert "http-delete-session" in html
    assert 'id="all-metrics"' in html


def test_report_command_writes_a_single_run_html(tmp_path: Path) -> None:
    out = tmp_path / "run.html"
    result = CliRunner().invoke(main, ["report", str(GOLDEN / "a" / "run-01"), "--html", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text()
    _assert_self_contained(html)
    assert html.count('<svg class="chart"') == 4
    assert "http: latency by percentile" in html
    assert render_html_run(load_side([GOLDEN / "a" / "run-01"]).runs[0]) == html


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("MCP_LOADTEST_REQUIRE_CHROMIUM") == "1":
        pytest.fail("MCP_LOADTEST_REQUIRE_CHROMIUM=1 but no chromium on PATH (apt-get install -y chromium)")
    return found


def _headless(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_html_renders_in_headless_chromium_without_errors(tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    page = tmp_path / "report.html"
    page.write_text(_comparison_html(), encoding="utf-8")
    dom = _headless(chromium, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The inline script ran to its end: it counts the plots into the title.
    assert "ready (5 plots)" in dom.stdout
    assert 'data-plots="5"' in dom.stdout
    assert "Uncaught" not in dom.stderr, dom.stderr[-2000:]
    assert "CONSOLE" not in dom.stderr, dom.stderr[-2000:]
    png = tmp_path / "report.png"
    shot = _headless(
        chromium,
        tmp_path / "profile",
        f"--screenshot={png}",
        "--window-size=1280,2000",
        "--hide-scrollbars",
        page.as_uri(),
    )
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # A blank page of this size compresses to a few KiB; plots and tables make it far larger.
    assert len(data) > 60_000
    if os.environ.get("MCP_LOADTEST_KEEP_SCREENSHOT"):
        shutil.copy(png, os.environ["MCP_LOADTEST_KEEP_SCREENSHOT"])
