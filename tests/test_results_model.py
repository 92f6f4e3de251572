"""The typed run document: round trips, the migration chain, refusals, the golden runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from loadtest.core.errors import UsageError
from loadtest.measure.metrics import Recorder
from loadtest.results.document import build_run, load_run, read_run, write_run
from loadtest.results.model import SCHEMA, OpSummary, RunDocument, TransportSection, migrate, totals_of

GOLDEN = Path(__file__).parent / "golden" / "compare"
S = 1_000_000_000


def _recorded() -> Recorder:
    rec = Recorder()
    ping = rec.op("stdio", "ping")
    ping.record(0, 0, 1_500_000, bytes_in=10, bytes_out=20)
    ping.record(0, 0, 2_000_000, error="jsonrpc", example={"message": "boom"})
    rec.op("stdio", "blob").record(0, 0, 0, silent="lost", example={"id": 3})
    rec.record_session("stdio", 3_000_000)
    rec.set_protocol_version("stdio", "2025-11-25")
    rec.finish()
    return rec


def test_recorder_sections_are_the_summary() -> None:
    rec = _recorded()
    sections = rec.sections()
    assert {name: s.to_json() for name, s in sections.items()} == rec.summary()
    ping = sections["stdio"].ops["ping"]
    assert (ping.count, ping.ok, dict(ping.errors), ping.bytes_in, ping.bytes_out) == (
        2,
        1,
        {"jsonrpc": 1},
        10,
        20,
    )
    assert ping.error_examples == {"jsonrpc": [{"message": "boom"}]}
    assert totals_of(sections) == rec.totals()


def test_document_round_trips_exactly(tmp_path: Path) -> None:
    rec = _recorded()
    document = build_run(
        {"started": "2026-01-01T00:00:00+00:00", "target": {"kind": "reference"}},
        {"name": "smoke"},
        rec.sections(),
        rec.totals(),
        [{"expr": "p99 < 1s", "value": 2.0, "passed": True}],
        checks=[{"id": "c1"}],
    )
    document["error"] = "server would not start"
    document["future_key"] = {"kept": True}  # a newer tool's addition survives a rewrite
    typed = RunDocument.from_json(document)
    assert typed.to_json() == document
    assert list(typed.to_json()) == list(document)
    write_run(tmp_path, typed)
    assert load_run(tmp_path) == document
    assert read_run(tmp_path) == typed
    assert typed.transports["stdio"].negotiated_protocol_version == "2025-11-25"
    assert typed.transports["stdio"].sessions.opened == 1


@pytest.mark.parametrize(
    "run", sorted(GOLDEN.glob("[ab]/run-*/run.json")), ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}"
)
def test_golden_runs_read_typed_and_keep_their_figures(run: Path) -> None:
    raw: dict[str, Any] = orjson.loads(run.read_bytes())
    typed = read_run(run)
    again = typed.to_json()
    # Older documents may lack keys the writer now adds; everything they had is kept as is.
    for name, section in raw["transports"].items():
        for op, stats in section["ops"].items():
            for key, value in stats.items():
                assert again["transports"][name]["ops"][op][key] == value, (name, op, key)
        for key in ("negotiated_protocol_version", "sessions", "server", "generator", "measured_s"):
            assert again["transports"][name][key] == section[key]
    for key in ("meta", "scenario", "totals", "thresholds"):
        assert again[key] == raw[key]


def _v1(n: int = 7) -> dict[str, Any]:
    return {"schema": "mcp-loadtest/run/1", "meta": {}, "totals": {"calls": n}, "transports": {}}


def test_migration_chain_applies_one_step_per_version() -> None:
    def one_to_two(doc: dict[str, Any]) -> dict[str, Any]:
        totals = doc.pop("totals")
        return {**doc, "summary": {"calls": totals["calls"]}}

    def two_to_three(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "summary": {**doc["summary"], "migrated": True}}

    steps = {1: one_to_two, 2: two_to_three}
    assert migrate(_v1(), migrations=steps, current=3) == {
        "schema": "mcp-loadtest/run/3",
        "meta": {},
        "transports": {},
        "summary": {"calls": 7, "migrated": True},
    }
    v2 = {"schema": "mcp-loadtest/run/2", "summary": {"calls": 1}}
    assert migrate(v2, migrations=steps, current=3)["summary"] == {"calls": 1, "migrated": True}
    # The current version passes untouched; a gap in the chain is refused, not guessed.
    assert migrate(_v1()) == _v1()
    with pytest.raises(UsageError, match="no migration from mcp-loadtest/run/2"):
        migrate(_v1(), migrations={1: one_to_two}, current=3)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("mcp-loadtest/run/2", "schema 'mcp-loadtest/run/2' is newer than this mcp-loadtest reads"),
        ("mcp-loadtest/run/0", "not an mcp-loadtest run \\(schema 'mcp-loadtest/run/0'\\)"),
        ("asv/1", "not an mcp-loadtest run \\(schema 'asv/1'\\)"),
        (None, "not an mcp-loadtest run \\(no 'schema' key\\)"),
    ],
)
def test_unreadable_schemas_are_one_line(tmp_path: Path, schema: str | None, message: str) -> None:
    path = tmp_path / "run.json"
    doc: dict[str, Any] = {"meta": {}} if schema is None else {"schema": schema, "meta": {}}
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(UsageError, match=message) as info:
        read_run(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_malformed_sections_are_named(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(orjson.dumps({"schema": SCHEMA, "transports": {"http": [1, 2]}}))
    with pytest.raises(UsageError, match=r"transports.http is not an object"):
        read_run(path)


def test_sections_default_what_old_runs_lack() -> None:
    section = TransportSection.from_json({"ops": {"echo": {"count": 3, "ok": 3}}})
    op = section.ops["echo"]
    assert op == OpSummary(count=3, ok=3, hlog_tag="echo")
    assert op.to_json()["error_examples"] == {}
    assert op.to_json()["bytes_in"] == 0
    assert section.sessions.to_json() == {
        "opened": 0,
        "failed": 0,
        "setup_latency_us": {"p50": None, "p99": None, "max": None},
    }
