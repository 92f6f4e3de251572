"""run.json: atomic writing, reading back, the run directory, environment and redaction."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest

from loadtest.core.errors import UsageError
from loadtest.measure.metrics import Recorder
from loadtest.results.document import (
    REDACTED,
    SCHEMA,
    build_run,
    environment,
    load_run,
    redact_env,
    run_dir,
    write_run,
)


def sample_run() -> dict[str, object]:
    rec = Recorder()
    rec.op("stdio", "ping").record(0, 0, 1_500_000)
    rec.finish()
    return build_run(
        meta={"tool_version": "0.1.0", "started": "2025-01-01T00:00:00+00:00", **environment()},
        scenario={"name": "smoke", "headers": {"Authorization": "Bearer s3cret"}},
        transports=rec.summary(),
        totals=rec.totals(),
        thresholds=[{"expr": "p99 < 100ms", "value": 1.5, "passed": True}],
    )


def test_build_run_is_in_contract_order() -> None:
    run = sample_run()
    assert list(run) == ["schema", "meta", "scenario", "transports", "totals", "thresholds"]
    with_checks = build_run({}, {}, {}, {}, [], checks=[{"id": "x"}])
    assert list(with_checks)[-1] == "checks"


def test_write_then_load_roundtrip(tmp_path: Path) -> None:
    run = sample_run()
    run.pop("schema")
    run["extra"] = {"order": [3, 1, 2]}
    path = write_run(tmp_path, run)
    assert path == tmp_path / "run.json"
    text = path.read_text()
    assert text.startswith('{\n  "schema": "mcp-loadtest/run/1",\n  "meta"')  # indented, schema first
    loaded = load_run(tmp_path)
    assert loaded == {"schema": SCHEMA, **run}
    assert list(loaded) == ["schema", *run]  # key order kept
    assert load_run(path) == loaded
    # No temporary files left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_rewrite_replaces_atomically(tmp_path: Path) -> None:
    write_run(tmp_path, {"meta": {"partial": True}})
    inode_before = (tmp_path / "run.json").stat().st_ino
    write_run(tmp_path, {"meta": {"partial": False}})
    assert load_run(tmp_path)["meta"] == {"partial": False}
    # A new file renamed over the old one, never the old one rewritten in place.
    assert (tmp_path / "run.json").stat().st_ino != inode_before
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    write_run(tmp_path, {"meta": {"n": 1}})
    with pytest.raises(TypeError):
        write_run(tmp_path, {"meta": {"n": object()}})
    assert load_run(tmp_path)["meta"] == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_load_rejects_what_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no run\.json"):
        load_run(tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        load_run(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_run(bad)
    other = tmp_path / "other.json"
    other.write_bytes(orjson.dumps({"hello": 1}))
    with pytest.raises(UsageError, match="no 'schema' key"):
        load_run(other)
    other.write_bytes(orjson.dumps([1, 2]))
    with pytest.raises(UsageError, match="not an mcp-loadtest run"):
        load_run(other)
    other.write_bytes(orjson.dumps({"schema": "mcp-loadtest/run/99"}))
    with pytest.raises(UsageError, match="newer than this mcp-loadtest reads"):
        load_run(other)
    assert UsageError("x").exit_code == 2


def test_run_dir_is_unique_and_named(tmp_path: Path) -> None:
    started = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    first = run_dir(tmp_path / "results", "nightly smoke/v2", started)
    assert first.name == "20250304-030607-nightly-smoke-v2"  # UTC
    assert first.is_dir()
    second = run_dir(tmp_path / "results", "nightly smoke/v2", started)
    third = run_dir(tmp_path / "results", "nightly smoke/v2", started)
    assert (second.name, third.name) == (first.name + "-2", first.name + "-3")
    assert run_dir(tmp_path, "///", datetime(2025, 1, 1)).name == "20250101-000000-run"


def test_environment() -> None:
    env = environment()
    assert {"host", "os", "python", "cpu_model", "cores", "machine_fingerprint"} <= set(env)
    assert env["cores"] == os.cpu_count()
    assert len(env["machine_fingerprint"]) == 16
    int(env["machine_fingerprint"], 16)
    assert environment()["machine_fingerprint"] == env["machine_fingerprint"]
    orjson.dumps(env)


def test_redact_env() -> None:
    redacted = redact_env(
        {
            "Authorization": "Bearer abc",
            "X-Api-Key": "k",
            "OPENAI_API_KEY": "k",
            "accessToken": "t",
            "db_password": "p",
            "Cookie": "c",
            "client_secret": "s",
            "credentials": {"user": "u", "pass": "p"},
            "headers": {"X-Auth-Token": "t", "Accept": "application/json"},
            "servers": [{"github_token": "t", "name": "gh"}],
            "max_tokens": 100,
            "author": "me",
            "keyword": "k",
            "empty_token": "",
        }
    )
    assert redacted == {
        "Authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "OPENAI_API_KEY": REDACTED,
        "accessToken": REDACTED,
        "db_password": REDACTED,
        "Cookie": REDACTED,
        "client_secret": REDACTED,
        "credentials": REDACTED,
        "headers": {"X-Auth-Token": REDACTED, "Accept": "application/json"},
        "servers": [{"github_token": REDACTED, "name": "gh"}],
        "max_tokens": 100,
        "author": "me",
        "keyword": "k",
        "empty_token": "",
    }
