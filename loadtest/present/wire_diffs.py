"""Wire-behaviour differences (conformance checks), grouped by cause.

Two SDK releases that negotiate different protocol versions differ in every check that shows
the version: ``initialize``, each ``negotiate-*`` probe, the accepted ``MCP-Protocol-Version``...
on every transport. Listed one by one that is a dozen lines for one cause, which buries the
difference that matters (a check that went from SUCCESS to FAILURE). A difference whose observed
behaviour is the same once protocol versions (``YYYY-MM-DD``) are set aside, and whose status
did not change, is put in that cause's group; every other difference is listed on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DiffGroup", "by_cause", "group_differences", "render_groups"]

_VERSION = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


@dataclass
class DiffGroup:
    """One cause and the checks it explains, or one difference of its own (``cause`` empty)."""

    cause: str
    lines: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def render(self) -> str:
        if not self.cause:
            return self.lines[0]
        return f"{self.cause}: {len(self.ids)} checks ({', '.join(self.ids)})"


def _version_change(observed: Sequence[Any]) -> tuple[list[str], list[str]] | None:
    """A's and B's differing versions when only versions differ between the observed texts."""
    a, b = (str(o) if o is not None else None for o in observed)
    if a is None or b is None or a == b:
        return None
    if _VERSION.sub("V", a) != _VERSION.sub("V", b):
        return None
    pairs = [(x, y) for x, y in zip(_VERSION.findall(a), _VERSION.findall(b), strict=False) if x != y]
    if not pairs:
        return None
    return [x for x, _ in pairs], [y for _, y in pairs]


def group_differences(diffs: Iterable[Mapping[str, Any]]) -> list[DiffGroup]:
    """Differences (``CheckDiff.to_dict()`` entries) grouped by cause; causes first."""
    versions_a: dict[str, None] = {}
    versions_b: dict[str, None] = {}
    grouped = DiffGroup("")
    single: list[DiffGroup] = []
    for diff in diffs:
        status = list(diff.get("status") or [None, None])
        change = _version_change(list(diff.get("observed") or [None, None]))
        if change is not None and status[0] == status[1]:
            versions_a.update(dict.fromkeys(change[0]))
            versions_b.update(dict.fromkeys(change[1]))
            grouped.ids.append(str(diff.get("id")))
            grouped.lines.append(str(diff.get("line")))
            continue
        single.append(DiffGroup("", [str(diff.get("line"))], [str(diff.get("id"))]))
    if not grouped.ids:
        return single
    grouped.cause = (
        f"protocol version negotiated: {', '.join(sorted(versions_a))} -> {', '.join(sorted(versions_b))}"
    )
    return [grouped, *single]


def render_groups(groups: Sequence[DiffGroup], indent: str = "  ") -> list[str]:
    """One line per group."""
    return [f"{indent}{group.render()}" for group in groups]


def by_cause(diffs: Sequence[Mapping[str, Any]]) -> tuple[list[DiffGroup], list[Mapping[str, Any]]]:
    """For table reports: the cause groups, and the differences left to list one per row."""
    causes = [group for group in group_differences(diffs) if group.cause]
    grouped = {check_id for group in causes for check_id in group.ids}
    return causes, [diff for diff in diffs if str(diff.get("id")) not in grouped]
