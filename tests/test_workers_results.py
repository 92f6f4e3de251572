"""``--workers 2`` results carry what one worker's do: the ``client`` section and error examples.

They used to come back with ``client: {}`` and no ``error_examples`` (issue 14), and
``compare`` reads ``cpu_per_call_us`` from the client section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loadtest.results.document import read_run
from loadtest.results.model import RunDocument
from loadtest.run.execute import execute
from loadtest.scenario import load_scenario

pytestmark = pytest.mark.anyio

SCENARIO = """
transports = ["stdio"]
[workload]
sessions = 2
requests = 40
warmup = "0s"
[[ops]]
name = "echo"
tool = "echo"
arguments = { text = "{nonce}" }
expect = { text = "{nonce}" }
[[ops]]
name = "missing"
tool = "no-such-tool"
"""


async def _run(tmp_path: Path, workers: int) -> RunDocument:
    path = tmp_path / "scenario.toml"
    path.write_text(SCENARIO)
    directory = tmp_path / f"workers-{workers}"
    directory.mkdir()
    outcome = await execute(load_scenario(path), directory, workers=workers)
    assert outcome.failure is None
    return read_run(outcome.path)


def _shape(value: Any) -> Any:
    """The keys of nested objects (values aside), to compare two documents' shapes."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k not in ("per_worker", "workers", "parent_cpu_s")}
    return None


async def test_two_workers_report_client_and_error_examples_like_one(tmp_path: Path) -> None:
    one = (await _run(tmp_path, 1)).transports["stdio"]
    two = (await _run(tmp_path, 2)).transports["stdio"]
    assert two.client.get("cpu_per_call_us") is not None
    assert two.client.get("calls") == sum(op.count for op in two.ops.values())
    assert set(two.client) == set(one.client)
    for name in ("echo", "missing"):
        assert set(two.ops[name].to_json()) == set(one.ops[name].to_json())
    missing = two.ops["missing"]
    assert missing.errors
    assert set(missing.error_examples) == set(one.ops["missing"].error_examples) == set(missing.errors)
    assert all(0 < len(kept) <= 5 for kept in missing.error_examples.values())
    assert set(_shape(two.to_json())["ops"]) == set(_shape(one.to_json())["ops"])
