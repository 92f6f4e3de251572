"""A clean run of mixed calls (blobs included) on every transport reports no silent failure.

The 100,000-call version is ``bench/clean_run.py``; these run smaller versions of it, directly
and through the proxy with no faults (which must then be invisible).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

BENCH = Path(__file__).parent.parent / "bench" / "clean_run.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("clean_run", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "through-proxy"])
async def test_clean_run_reports_zero_silent_failures(tmp_path: Path, through_proxy: bool) -> None:
    calls = 1500 if through_proxy else 2500
    figures = await _bench().clean_run(calls, 6, ["stdio", "sse", "http"], through_proxy, tmp_path)
    assert figures["calls"] == 3 * calls
    assert figures["silent_failures"] == 0, figures
    assert figures["errors"] == 0, figures
    for transport in figures["transports"].values():
        assert transport["ok"] == calls
