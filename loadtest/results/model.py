"""The run document (run.json) as types: one shape, one writer, one reader, versioned.

:class:`RunDocument` and the sections it holds have ``to_json()`` (the only code that shapes
run.json) and ``from_json()``. Documents are versioned by their ``schema``
(``mcp-loadtest/run/<n>``): :func:`migrate` brings any older version up to
:data:`SCHEMA` through a chain of one-step migrations, as asv does with its result files, so
every run ever written stays readable; a newer or foreign schema is refused in one line.

The measurement sections (:class:`TransportSection`, :class:`OpSummary`, :class:`Sessions`...)
are defined in :mod:`loadtest.measure.summary`, because the recorder builds them and may not
import this layer; they are re-exported here so that readers need one import.

``meta``, ``target`` and ``totals`` are :class:`~typing.TypedDict`: open sets of facts that
grow with features ("add freely": README, "Results") and that reports read by key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from loadtest.core.errors import UsageError
from loadtest.measure.summary import (
    Client,
    Generator,
    Latency,
    OpSummary,
    Server,
    Sessions,
    SetupLatency,
    TransportSection,
)

#: The version this tool writes.
VERSION = 1
SCHEMA_PREFIX = "mcp-loadtest/run/"
SCHEMA = f"{SCHEMA_PREFIX}{VERSION}"

Json = dict[str, Any]
#: A one-step migration: a document of version n (as parsed JSON) to version n + 1.
Migration = Callable[[Json], Json]

#: ``MIGRATIONS[n]`` turns a version-n document into a version n+1 one. Add one with every
#: new schema version (rename or restructure only with a new version; README, "Results").
MIGRATIONS: dict[int, Migration] = {}

_SCHEMA_RE = re.compile(rf"^{re.escape(SCHEMA_PREFIX)}([1-9][0-9]*)$")


class Target(TypedDict, total=False):
    """``meta.target``: what was measured."""

    kind: str  # "reference" | "command" | "url"
    command: str
    url: str | dict[str, str] | None
    #: The server's SDK (``{"name": "mcp", "version": "1.23.1"}``, a matrix environment adds
    #: ``spec`` and ``freeze``) when known; ``None`` when not (``sdk_source`` is "unknown").
    sdk: dict[str, Any] | None
    #: Where ``sdk`` comes from: "reference", "environment", "server_info" or "unknown".
    sdk_source: str
    #: The ``serverInfo`` the server gave in its ``initialize`` result (first transport seen).
    server_info: dict[str, Any]


class Meta(TypedDict, total=False):
    """``meta``: when, where, what and with which tool the run was made."""

    tool: dict[str, Any]
    started: str | None
    ended: str | None
    host: str
    os: str
    kernel: str
    python: str
    python_implementation: str
    cpu_model: str
    cores: int | None
    machine_fingerprint: str
    target: Target
    client: dict[str, Any]
    scenario_hash: str
    workload_hash: str
    workers: int
    #: An interrupted run (SIGINT/SIGTERM): True, and what ran of the plan (``ran``).
    partial: Any
    ran: dict[str, Any]


class Totals(TypedDict):
    """``totals``: calls, loud errors and silent failures over every transport and op."""

    calls: int
    errors: int
    silent_failures: int


def totals_of(transports: Mapping[str, TransportSection]) -> Totals:
    """The totals of some transport sections (unattributed failures included)."""
    calls = errors = silent = 0
    for section in transports.values():
        for op in section.ops.values():
            calls += op.count
            errors += sum(op.errors.values())
            silent += sum(op.silent.values())
    return {"calls": calls, "errors": errors, "silent_failures": silent}


@dataclass(frozen=True, slots=True)
class RunDocument:
    """A whole run.json."""

    meta: Meta = field(default_factory=lambda: Meta())
    #: The resolved scenario, secrets redacted (``Scenario.to_dict()``).
    scenario: Mapping[str, Any] = field(default_factory=dict)
    transports: Mapping[str, TransportSection] = field(default_factory=dict)
    totals: Totals = field(default_factory=lambda: Totals(calls=0, errors=0, silent_failures=0))
    thresholds: Sequence[Mapping[str, Any]] = ()
    #: Conformance results; ``None`` (no key) when conformance did not run.
    checks: Sequence[Mapping[str, Any]] | None = None
    #: Why the document is incomplete (a run rebuilt from its logs, an interrupted run); no
    #: key when complete.
    partial: str | None = None
    #: Why the run could not be carried out; no key when it could.
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("schema", "partial", "meta", "scenario", "transports", "totals", "thresholds", "checks", "error")

    def to_json(self) -> Json:
        """The document as run.json holds it, keys in contract order, ``schema`` first."""
        out: Json = {"schema": SCHEMA}
        if self.partial is not None:
            out["partial"] = self.partial
        out["meta"] = dict(self.meta)
        out["scenario"] = dict(self.scenario)
        out["transports"] = {name: section.to_json() for name, section in self.transports.items()}
        out["totals"] = dict(self.totals)
        out["thresholds"] = [dict(item) for item in self.thresholds]
        if self.checks is not None:
            out["checks"] = [dict(item) for item in self.checks]
        if self.error is not None:
            out["error"] = self.error
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "run.json") -> RunDocument:
        """Parse a document of any readable version (migrated first); ``UsageError`` if not one."""
        doc = migrate(data, where)
        for key, kind in (("meta", Mapping), ("scenario", Mapping), ("transports", Mapping)):
            if not isinstance(doc.get(key, {}), kind):
                raise UsageError(f"{where}: {key!r} is not an object")
        transports = doc.get("transports") or {}
        for name, section in transports.items():
            if not isinstance(section, Mapping):
                raise UsageError(f"{where}: transports.{name} is not an object")
        parsed = {str(name): TransportSection.from_json(section) for name, section in transports.items()}
        totals = doc.get("totals")
        partial, error, checks = doc.get("partial"), doc.get("error"), doc.get("checks")
        return cls(
            meta=cast(Meta, dict(doc.get("meta") or {})),
            scenario=dict(doc.get("scenario") or {}),
            transports=parsed,
            totals=cast(Totals, dict(totals)) if isinstance(totals, Mapping) else totals_of(parsed),
            thresholds=list(doc.get("thresholds") or []),
            checks=None if checks is None else list(checks),
            partial=None if partial is None else str(partial),
            error=None if error is None else str(error),
            extra={k: v for k, v in doc.items() if k not in cls._KEYS},
        )


def schema_version(data: Mapping[str, Any], where: str) -> int:
    """The version number of a document's ``schema``; ``UsageError`` if it is not a run's."""
    schema = data.get("schema")
    match = _SCHEMA_RE.match(schema) if isinstance(schema, str) else None
    if match is None:
        if schema is None:
            raise UsageError(f"{where}: not an mcp-loadtest run (no 'schema' key)")
        raise UsageError(
            f"{where}: not an mcp-loadtest run (schema {schema!r}); expected {SCHEMA!r} or older"
        )
    return int(match.group(1))


def migrate(
    data: Mapping[str, Any],
    where: str = "run.json",
    *,
    migrations: Mapping[int, Migration] | None = None,
    current: int = VERSION,
) -> Json:
    """``data`` brought up to version ``current`` through one migration per version.

    A newer version than ``current`` is refused (this tool cannot know what changed), as is a
    version with no migration on the way. ``migrations`` and ``current`` default to this
    tool's; tests pass their own.
    """
    steps = MIGRATIONS if migrations is None else migrations
    version = schema_version(data, where)
    if version > current:
        raise UsageError(
            f"{where}: schema {data['schema']!r} is newer than this mcp-loadtest reads"
            f" ({SCHEMA_PREFIX}{current}); upgrade mcp-loadtest to read it"
        )
    doc = dict(data)
    while version < current:
        step = steps.get(version)
        if step is None:
            raise UsageError(f"{where}: no migration from {SCHEMA_PREFIX}{version} (this is a bug)")
        doc = step(doc)
        version += 1
        doc["schema"] = f"{SCHEMA_PREFIX}{version}"
    return doc


__all__ = [
    "MIGRATIONS",
    "SCHEMA",
    "VERSION",
    "Client",
    "Generator",
    "Latency",
    "Meta",
    "Migration",
    "OpSummary",
    "RunDocument",
    "Server",
    "Sessions",
    "SetupLatency",
    "Target",
    "Totals",
    "TransportSection",
    "migrate",
    "schema_version",
    "totals_of",
]
