"""What a check is and what it reports: id, name, status, spec reference, details, observed.

Two vocabularies come out of one :class:`CheckResult`: :meth:`CheckResult.to_dict` for the
``checks`` section of run.json (README, "Results"), and :meth:`CheckResult.to_conformance`
for the array the official suite (``@modelcontextprotocol/conformance``) writes as
``checks.json``: ``id``, ``name``, ``description``, ``status``, ``timestamp``,
``specReferences`` (``[{id, url}]``), ``details`` and ``errorMessage``.

``observed`` is a short, deterministic account of what the server did ("DELETE -> 405"): no
session ids, ports or timings, so that two runs of two SDK versions can be diffed line by line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

Status = Literal["SUCCESS", "FAILURE", "WARNING", "SKIPPED", "INFO"]
STATUSES: tuple[Status, ...] = ("SUCCESS", "FAILURE", "WARNING", "SKIPPED", "INFO")

#: The released specification versions, oldest first.
V2024_11_05 = "2024-11-05"
V2025_03_26 = "2025-03-26"
V2025_06_18 = "2025-06-18"
V2025_11_25 = "2025-11-25"
SPEC_VERSIONS: tuple[str, ...] = (V2024_11_05, V2025_03_26, V2025_06_18, V2025_11_25)
#: A version no server can know: what does it answer to a client from the future?
FUTURE_VERSION = "2099-01-01"

#: Version sets, by the transport section they come from.
ALL = SPEC_VERSIONS
STDIO = SPEC_VERSIONS
LEGACY_SSE = (V2024_11_05,)  # later versions keep it only for backwards compatibility
STREAMABLE = (V2025_03_26, V2025_06_18, V2025_11_25)
FROM_2025_06_18 = (V2025_06_18, V2025_11_25)
FROM_2025_11_25 = (V2025_11_25,)

SPEC_URL = "https://modelcontextprotocol.io/specification/{version}/{ref}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class CheckResult:
    """The outcome of one check against one target over one transport."""

    id: str
    name: str
    status: Status
    transport: str
    description: str
    #: Spec versions the requirement applies to.
    versions: tuple[str, ...]
    #: Page and anchor below the version in the spec's URL, e.g. ``basic/transports#session-management``.
    ref: str
    #: What the server did, compact and deterministic: the value compared across versions.
    observed: str = ""
    #: What was sent and what came back.
    details: dict[str, Any] = field(default_factory=dict)
    error_message: str | None = None
    timestamp: str = field(default_factory=_now)

    @property
    def spec_urls(self) -> list[str]:
        """The reference in the newest version it applies to."""
        version = self.versions[-1] if self.versions else SPEC_VERSIONS[-1]
        return [SPEC_URL.format(version=version, ref=self.ref)]

    def to_dict(self) -> dict[str, Any]:
        """The run.json form (``{"id", "name", "status", "spec", "details"}`` and more)."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "transport": self.transport,
            "spec": {"versions": list(self.versions), "ref": self.ref, "url": self.spec_urls[0]},
            "description": self.description,
            "observed": self.observed,
            "details": self.details,
            "timestamp": self.timestamp,
        }
        if self.error_message:
            out["errorMessage"] = self.error_message
        return out

    def to_conformance(self) -> dict[str, Any]:
        """The official suite's ``checks.json`` form; our extras travel inside ``details``."""
        page = self.ref.split("#")[0].split("/")[-1]
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "timestamp": self.timestamp,
            "specReferences": [
                {"id": f"MCP-{page.replace('_', '-').title()}", "url": url} for url in self.spec_urls
            ],
            "details": {
                **self.details,
                "transport": self.transport,
                "specVersions": list(self.versions),
                "observed": self.observed,
            },
        }
        if self.error_message:
            out["errorMessage"] = self.error_message
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """Read back :meth:`to_dict` output (a run.json's ``checks`` entry)."""
        spec = data.get("spec") or {}
        status = data.get("status", "INFO")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", data["id"])),
            status=status if status in STATUSES else "INFO",
            transport=str(data.get("transport", "")),
            description=str(data.get("description", "")),
            versions=tuple(spec.get("versions", ())),
            ref=str(spec.get("ref", "")),
            observed=str(data.get("observed", "")),
            details=dict(data.get("details") or {}),
            error_message=data.get("errorMessage"),
            timestamp=str(data.get("timestamp", "")),
        )


@dataclass(frozen=True)
class CheckSpec:
    """The fixed part of a check: who it is and which part of the spec it comes from."""

    id: str
    name: str
    description: str
    versions: tuple[str, ...]
    ref: str

    def result(
        self,
        transport: str,
        status: Status,
        observed: str,
        details: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> CheckResult:
        """This check's result; ``error`` becomes ``errorMessage`` (why it is not SUCCESS)."""
        return CheckResult(
            id=self.id,
            name=self.name,
            status=status,
            transport=transport,
            description=self.description,
            versions=self.versions,
            ref=self.ref,
            observed=observed,
            details=dict(details or {}),
            error_message=error,
        )


def summarize(results: list[CheckResult]) -> dict[str, int]:
    """How many checks ended in each status (every status present, zeros included)."""
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for result in results:
        counts[result.status] += 1
    return counts
