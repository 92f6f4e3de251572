"""What changed between two sets of check results: :func:`diff_checks` lists every check whose
status or observed behaviour differs, for the comparison and matrix reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.conformance.model import CheckResult


@dataclass(frozen=True)
class CheckDiff:
    """One check that differs between run A and run B (None: absent from that run)."""

    id: str
    name: str
    status_a: str | None
    status_b: str | None
    observed_a: str | None
    observed_b: str | None

    @property
    def status_changed(self) -> bool:
        return self.status_a != self.status_b

    @property
    def observed_changed(self) -> bool:
        return self.observed_a != self.observed_b

    def __str__(self) -> str:
        """``http-delete-session: DELETE -> 405 => DELETE -> 200 [SUCCESS]``."""
        observed = (
            f"{self.observed_a or '(absent)'} => {self.observed_b or '(absent)'}"
            if self.observed_changed
            else (self.observed_a or "")
        )
        status = f"{self.status_a} -> {self.status_b}" if self.status_changed else str(self.status_a)
        return f"{self.id}: {observed} [{status}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": [self.status_a, self.status_b],
            "observed": [self.observed_a, self.observed_b],
            "line": str(self),
        }


def _as_results(checks: Sequence[CheckResult | Mapping[str, Any]]) -> dict[str, CheckResult]:
    out: dict[str, CheckResult] = {}
    for item in checks:
        result = item if isinstance(item, CheckResult) else CheckResult.from_dict(item)
        out[result.id] = result
    return out


def diff_checks(
    a: Sequence[CheckResult | Mapping[str, Any]], b: Sequence[CheckResult | Mapping[str, Any]]
) -> list[CheckDiff]:
    """Every check whose status or observed behaviour differs between ``a`` and ``b``.

    Either side may be :class:`CheckResult` objects or run.json ``checks`` entries. A check
    present on one side only is a difference too. Order: A's checks, then B's new ones.
    """
    left, right = _as_results(a), _as_results(b)
    diffs = []
    for check_id in [*left, *(k for k in right if k not in left)]:
        x, y = left.get(check_id), right.get(check_id)
        sa, sb = (x.status if x else None), (y.status if y else None)
        oa, ob = (x.observed if x else None), (y.observed if y else None)
        if sa != sb or oa != ob:
            diffs.append(CheckDiff(check_id, (x or y).name if (x or y) else check_id, sa, sb, oa, ob))  # type: ignore[union-attr]
    return diffs
