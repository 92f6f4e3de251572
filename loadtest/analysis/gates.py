"""The user's thresholds over a side's runs: correctness gates are absolute in every command.

Each run evaluated the scenario's thresholds when it ran (run.json ``thresholds``). A side of a
``matrix`` or ``compare`` is several runs; a threshold holds for the side only if it held in
every run: a silent failure in one run of five is a failure, not a 20% rate to average away.
No statistics here, and none needed: a gate is a fact about each run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SideGate", "any_failed", "side_gates"]


@dataclass(frozen=True, slots=True)
class SideGate:
    """One threshold over one side's runs."""

    expr: str
    runs: int
    failed: int
    #: The failing run's result (or the first run's, when all passed), as run.json has it.
    worst: Mapping[str, Any]

    @property
    def passed(self) -> bool:
        return self.runs > 0 and self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "expr": self.expr,
            "passed": self.passed,
            "runs": self.runs,
            "failed_runs": self.failed,
            "worst": dict(self.worst),
        }


def side_gates(documents: Sequence[Mapping[str, Any]]) -> list[SideGate]:
    """Every threshold found in ``documents`` (run.json contents), in the order first seen."""
    seen: dict[str, list[Mapping[str, Any]]] = {}
    for document in documents:
        for item in document.get("thresholds") or []:
            if isinstance(item, Mapping) and "expr" in item:
                seen.setdefault(str(item["expr"]), []).append(item)
    out = []
    for expr, results in seen.items():
        failed = [r for r in results if not r.get("passed")]
        out.append(SideGate(expr, len(results), len(failed), (failed or results)[0]))
    return out


def any_failed(gates: Sequence[SideGate]) -> bool:
    """True when a threshold failed in at least one run."""
    return any(not gate.passed for gate in gates)
