"""``meta.target.sdk`` names the server's SDK only when it is known (issue 15 item 8).

Known: the bundled reference server (the ``mcp`` installed for the Python that runs it), a
matrix environment, or a server whose ``serverInfo`` reports its SDK's version. Anything else
(the TypeScript server-everything here) is "SDK unknown" with the ``serverInfo`` it gave; it
used to be labelled with the tester's own ``mcp``.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from loadtest.present.terminal import Style, render_summary
from loadtest.results.document import read_run
from loadtest.run.execute import execute
from loadtest.run.targets.reference import REFERENCE_SERVER
from loadtest.scenario import Scenario, load_scenario
from tests.npm_servers import everything_command, require_everything

pytestmark = pytest.mark.anyio

MCP = version("mcp")


def _scenario(tmp_path: Path, target: str, op: str) -> Scenario:
    path = tmp_path / "scenario.toml"
    path.write_text(
        f"""
        transports = ["stdio"]
        {target}
        [workload]
        sessions = 1
        requests = 5
        warmup = "0s"
        [[ops]]
        {op}
        """
    )
    return load_scenario(path)


async def _target(tmp_path: Path, scenario: Scenario) -> tuple[dict[str, Any], str]:
    directory = tmp_path / "run"
    directory.mkdir()
    outcome = await execute(scenario, directory)
    assert outcome.failure is None
    target: dict[str, Any] = dict(read_run(outcome.path).meta["target"])
    return target, render_summary(outcome.document, Style(colour=False))


@pytest.mark.npm
async def test_typescript_server_is_not_labelled_with_the_testers_mcp(tmp_path: Path) -> None:
    installed = require_everything()
    # node and the entry point; the loopback import only matters to the HTTP transports (and
    # its braces would read as command placeholders).
    argv = everything_command([installed[0], installed[-1]], "stdio")
    scenario = _scenario(
        tmp_path,
        f"[target]\ncommand = {json.dumps(argv)}",
        'tool = "echo"\narguments = { message = "{nonce}" }',
    )
    target, text = await _target(tmp_path, scenario)
    assert target["sdk"] is None
    assert target["sdk_source"] == "unknown"
    info = target["server_info"]
    assert info["name"]
    assert info["name"] != "mcp-loadtest-reference"
    assert f"the server command (SDK unknown; serverInfo: {info['name']}" in text
    assert f"mcp {MCP}" not in text


async def test_reference_server_as_a_command_reports_its_sdk_through_server_info(tmp_path: Path) -> None:
    # Not the bundled target, so nothing is assumed; the server's serverInfo names its mcp.
    command = json.dumps([sys.executable, str(REFERENCE_SERVER), "--transport", "stdio"])
    scenario = _scenario(
        tmp_path, f"[target]\ncommand = {command}", 'tool = "echo"\narguments = { text = "x" }'
    )
    target, text = await _target(tmp_path, scenario)
    assert target["sdk_source"] == "server_info"
    assert target["sdk"] == {"name": "mcp", "version": target["server_info"]["version"]}
    assert f"under test: the server command on mcp {target['server_info']['version']};" in text


async def test_bundled_reference_server_is_the_installed_mcp(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, "", 'tool = "echo"\narguments = { text = "x" }')
    target, text = await _target(tmp_path, scenario)
    assert target["sdk_source"] == "reference"
    assert target["sdk"] == {"name": "mcp", "version": MCP}
    assert f"under test: the reference server on mcp {MCP};" in text
