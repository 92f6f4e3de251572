"""Scenario files: the shipped ones load, and every mistake is one line naming file and key."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from loadtest.core.errors import UsageError
from loadtest.core.units import format_duration, format_latency_us, parse_duration, parse_rate
from loadtest.scenario import BUNDLED_DEFAULT, Op, load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.toml"))


def write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path | None, overrides: dict[str, Any] | None = None) -> str:
    with pytest.raises(UsageError) as info:
        load_scenario(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


ECHO = """
[[ops]]
tool = "echo"
arguments = { text = "hi {nonce}" }
"""

# -- shipped scenarios --------------------------------------------------------------------------


def test_the_shipped_scenarios_are_all_there() -> None:
    names = {path.stem for path in SHIPPED}
    assert {"default", "upgrade", "nightly", "large-blob", "soak"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.source == str(path)
    assert scenario.ops
    # Every shipped scenario targets the bundled reference server, but the interop one.
    assert scenario.target.reference == (path.stem != "everything")
    assert re.fullmatch(r"[0-9a-f]{16}", scenario.scenario_hash)
    json.dumps(scenario.to_dict())  # plain JSON data
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), "a comment header says what the scenario is for"
    assert "mcp-loadtest " in text.split("\n\n")[0], "the header shows the command to run it"


def test_the_bundled_default_loads_without_a_path() -> None:
    scenario = load_scenario(None)
    assert scenario.source == BUNDLED_DEFAULT
    assert scenario.name == "default"
    assert scenario.transports == ("stdio", "sse", "http")
    assert scenario.target.reference
    workload = scenario.workload
    assert workload.model == "closed"
    assert workload.sessions == 4
    assert workload.warmup + (workload.total_duration or 0) <= 10
    methods = {op.method for op in scenario.ops}
    assert methods == {"tools/call", "resources/read", "prompts/get", "tools/list", "ping"}
    assert "fail" not in {op.tool for op in scenario.ops}
    assert [t.expr for t in scenario.thresholds] == ["silent_failures == 0", "error_rate == 0"]
    assert scenario.scenario_hash == load_scenario(SCENARIOS / "default.toml").scenario_hash


def test_the_default_progress_op_asks_for_its_notifications() -> None:
    progress = next(op for op in load_scenario(None).ops if op.tool == "progress")
    assert progress.progress
    assert progress.expect_progress == 3


# -- errors name the file and the key ------------------------------------------------------------

ERRORS = [
    pytest.param(
        '[workload]\nrate = "fast"\n' + ECHO,
        "workload.rate: expected a rate like '200/s' or '300/h', got 'fast'",
        id="bad-rate",
    ),
    pytest.param(
        '[[ops]]\nmethod = "ping"\n[[ops]]\nmethod = "ping"\nname = "p2"\n[[ops]]\nmethod = "tools/cal"\n',
        "ops[2].method: expected one of tools/call, resources/read, prompts/get, tools/list, prompts/list, resources/list, ping, "
        "got 'tools/cal' (did you mean 'tools/call'?)",
        id="bad-method",
    ),
    pytest.param(
        "[workload]\nsesions = 3\n" + ECHO,
        "workload.sesions: unknown key (did you mean 'sessions'?)",
        id="unknown-key",
    ),
    pytest.param(
        ECHO + 'thresholds = ["p99 < 1s"]\n',
        "ops[0].thresholds: unknown key ('thresholds' is a top-level key: move it above the first [table] header)",
        id="top-level-key-in-table",
    ),
    pytest.param("nmae = 'x'\n" + ECHO, "nmae: unknown key (did you mean 'name'?)", id="unknown-top-key"),
    pytest.param(
        ECHO + "zzz = 1\n",
        "ops[0].zzz: unknown key (known keys: name, method, tool",
        id="unknown-key-no-match",
    ),
    pytest.param(
        '[workload]\nsessions = "four"\n' + ECHO,
        "workload.sessions: expected a whole number, got 'four'",
        id="type",
    ),
    pytest.param(
        "[workload]\nsessions = 0\n" + ECHO,
        "workload.sessions: expected a whole number >= 1, got 0",
        id="range",
    ),
    pytest.param(
        '[workload]\nduration = "10 parsecs"\n' + ECHO,
        "workload.duration: expected a duration",
        id="duration",
    ),
    pytest.param(
        '[workload]\nmodel = "opne"\n' + ECHO,
        'workload.model: expected "closed" or "open", got \'opne\'',
        id="model",
    ),
    pytest.param(
        '[workload]\nmodel = "open"\n' + ECHO, "workload.rate: the open model needs a rate", id="open-no-rate"
    ),
    pytest.param(
        '[workload]\nmodel = "closed"\nrate = "5/s"\n' + ECHO,
        'workload.rate: only the open model has a rate, and workload.model is "closed"',
        id="closed-rate",
    ),
    pytest.param(
        '[workload]\nrate = "5/s"\nthink_time = "1s"\n' + ECHO,
        "workload.think_time: only the closed model pauses",
        id="open-think-time",
    ),
    pytest.param(
        '[workload]\nduration = "5s"\nstages = [{ duration = "1s", sessions = 2 }]\n' + ECHO,
        "workload.duration: the stages set the duration (together 1s); drop one",
        id="stages-and-duration",
    ),
    pytest.param(
        '[workload]\nmodel = "open"\nstages = [{ duration = "1s", sessions = 2 }]\n' + ECHO,
        "workload.stages[0].sessions: open-model stages set a rate, not sessions",
        id="stage-kind",
    ),
    pytest.param(
        '[workload]\nstages = [{ duration = "1s" }]\n' + ECHO,
        "workload.stages[0].sessions: missing",
        id="stage-missing",
    ),
    pytest.param(
        "[[ops]]\nmethod = 'tools/call'\n", "ops[0].tool: missing; tools/call needs a tool", id="missing-tool"
    ),
    pytest.param("[[ops]]\nweight = 2\n", "ops[0].method: missing; expected one of", id="missing-method"),
    pytest.param("[[ops]]\nmethod = 'ping'\ntool = 'x'\n", "ops[0].tool: not used by ping", id="extra-field"),
    pytest.param(
        "[ops]\nmethod = 'ping'\n", "ops: expected an array of tables ([[ops]]), got a table", id="ops-table"
    ),
    pytest.param(
        "[[ops]]\ntool = 'echo'\n[[ops]]\ntool = 'echo'\n",
        "ops[1].name: 'echo' is also the name of ops[0]; give each op a distinct name",
        id="duplicate-names",
    ),
    pytest.param(
        "[[ops]]\ntool = 'echo'\nweight = -1\n",
        "ops[0].weight: expected a positive number, got -1",
        id="weight",
    ),
    pytest.param(
        "[[ops]]\ntool = 'echo'\nexpect = { regex = '([' }\n",
        "ops[0].expect.regex: invalid regular expression '(['",
        id="bad-regex",
    ),
    pytest.param(
        "[[ops]]\ntool = 'echo'\nexpect = { text = 'a', length = 1 }\n",
        "ops[0].expect.length: give at most one of text, regex, length, sha256, json, blob, consistent; text is already set",
        id="two-expectations",
    ),
    pytest.param(
        "[[ops]]\ntool = 'echo'\nexpect = { sha256 = 'abc' }\n",
        "ops[0].expect.sha256: expected 64 hex digits, got 'abc'",
        id="sha256",
    ),
    pytest.param(
        "[[ops]]\nuri = 'file:///x'\nexpect = { blob = true }\n",
        "ops[0].expect.blob: needs a uri like 'blob://65536/{seed}'",
        id="blob-uri",
    ),
    pytest.param(
        "[[ops]]\ntool = 'blob'\narguments = { size = 5 }\nexpect = { blob = true }\n",
        "ops[0].expect.blob: needs arguments.n_bytes",
        id="blob-args",
    ),
    pytest.param(
        "[[ops]]\nmethod = 'ping'\nexpect = { is_error = true }\n",
        "ops[0].expect.is_error: only tools/call results carry isError",
        id="is-error",
    ),
    pytest.param(
        "[[ops]]\ntool = 'progress'\nexpect_progress = 3\n",
        "ops[0].expect_progress: needs progress = true",
        id="expect-progress",
    ),
    pytest.param(
        "[[ops]]\nprompt = 'greet'\narguments = { n = 1 }\n",
        "ops[0].arguments.n: expected a string, got 1",
        id="prompt-args-are-strings",
    ),
    pytest.param(
        "[[ops]]\ntool = 'echo'\narguments = { when = 1979-05-27 }\n",
        "ops[0].arguments.when: expected a JSON value",
        id="toml-date",
    ),
    pytest.param(
        'transports = ["stdio", "htpp"]\n' + ECHO,
        "transports[1]: expected one of stdio, sse, http, got 'htpp' (did you mean 'http'?)",
        id="transport",
    ),
    pytest.param(
        'transports = ["stdio", "http"]\n[target]\nurl = "http://127.0.0.1:1/mcp"\n' + ECHO,
        "transports: stdio needs a server to launch, but the target is a URL",
        id="stdio-url",
    ),
    pytest.param(
        '[target]\nurl = "ftp://x"\n' + ECHO, "target.url: expected an http:// or https:// URL", id="url"
    ),
    pytest.param(
        '[target]\ncommand = "srv --port {prot}"\n' + ECHO,
        "target.command: unknown placeholder {prot}; expected {transport}, {port}, {python}",
        id="placeholder",
    ),
    pytest.param(
        "[target]\ncommand = 'srv \"unclosed'\n" + ECHO,
        "target.command: cannot split into arguments",
        id="command-quotes",
    ),
    pytest.param(
        '[target]\ncommand = "srv"\nurl = "http://h/mcp"\n' + ECHO,
        "target.url: give either target.command or target.url, not both",
        id="command-and-url",
    ),
    pytest.param(
        '[target]\ncommand = "srv"\njson_response = true\n' + ECHO,
        "target.json_response: applies only to the bundled reference server",
        id="reference-only",
    ),
    pytest.param(
        '[target]\nheaders = { Authorization = "Bearer ${LOADTEST_SURELY_UNSET_VAR}" }\n' + ECHO,
        "target.headers.Authorization: environment variable LOADTEST_SURELY_UNSET_VAR is not set",
        id="unset-env-var",
    ),
    pytest.param(
        'thresholds = ["p99 < 5ms", "p99 < fast"]\n' + ECHO,
        "thresholds[1]: p99 in 'p99 < fast': expected a duration",
        id="threshold-syntax",
    ),
    pytest.param(
        'thresholds = ["http/ecoh: p99 < 5ms"]\n' + ECHO,
        "thresholds[0]: no op named 'ecoh' in the scope of 'http/ecoh: p99 < 5ms' (did you mean 'echo'?)",
        id="threshold-op",
    ),
    pytest.param(
        'thresholds = ["htp: p99 < 5ms"]\n' + ECHO,
        "thresholds[0]: unknown transport 'htp' in the scope of 'htp: p99 < 5ms' (did you mean 'http'?)",
        id="threshold-transport",
    ),
    pytest.param(
        'thresholds = "p99 < 5ms"\n' + ECHO, "thresholds: expected an array of strings", id="thresholds-type"
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    message = load_error(path)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_a_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "x"\n\n[workload\nsessions = 2\n')
    message = load_error(path)
    assert message.startswith(f"{path}: line 3, column ")
    assert "invalid TOML" in message


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert load_error(missing) == f"scenario file not found: {missing}"


def test_a_directory_is_not_a_scenario(tmp_path: Path) -> None:
    assert load_error(tmp_path) == f"scenario path is not a file: {tmp_path}"


def test_a_scenario_without_ops_against_another_server_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[target]\ncommand = "srv"\n')
    assert load_error(path).startswith(f"{path}: ops: no operations")


def test_a_scenario_without_ops_gets_the_default_mix_on_the_reference_server(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, "[workload]\nsessions = 1\n"))
    assert [op.name for op in scenario.ops] == [op.name for op in load_scenario(None).ops]
    assert scenario.workload.sessions == 1


# -- defaults, inference, workload ------------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, ECHO, "mine.toml"))
    assert scenario.name == "mine"
    assert scenario.transports == ("stdio", "sse", "http")
    workload = scenario.workload
    assert (workload.model, workload.sessions, workload.duration, workload.requests) == ("closed", 4, 10.0, 0)
    assert (workload.warmup, workload.request_timeout, workload.connect_timeout) == (1.0, 30.0, 20.0)
    op = scenario.ops[0]
    assert (op.name, op.method, op.weight) == ("echo", "tools/call", 1.0)


def test_op_names_and_methods_are_derived(tmp_path: Path) -> None:
    text = """
[[ops]]
uri = "blob://10/{seed}"
[[ops]]
prompt = "greet"
[[ops]]
method = "tools/list"
[[ops]]
method = "ping"
"""
    ops = load_scenario(write(tmp_path, text)).ops
    assert [(op.name, op.method) for op in ops] == [
        ("read:blob", "resources/read"),
        ("greet", "prompts/get"),
        ("tools/list", "tools/list"),
        ("ping", "ping"),
    ]


def test_units_are_parsed(tmp_path: Path) -> None:
    text = '[workload]\nrate = "300/h"\nduration = "1h30m"\nwarmup = "250ms"\nchurn = 7\n' + ECHO
    workload = load_scenario(write(tmp_path, text)).workload
    assert workload.model == "open"  # a rate implies the open model
    assert workload.rate == pytest.approx(300 / 3600)
    assert workload.duration == 5400.0
    assert workload.warmup == 0.25
    assert workload.churn == 7


def test_requests_alone_bound_the_run(tmp_path: Path) -> None:
    workload = load_scenario(write(tmp_path, "[workload]\nrequests = 50\n" + ECHO)).workload
    assert workload.requests == 50
    assert workload.duration is None


def test_open_stages(tmp_path: Path) -> None:
    text = (
        '[workload]\nmodel = "open"\nstages = [{ duration = "5s", rate = "50/s" }, '
        '{ duration = "10s", rate = "200/s" }]\n' + ECHO
    )
    workload = load_scenario(write(tmp_path, text)).workload
    assert [(s.duration, s.rate) for s in workload.stages] == [(5.0, 50.0), (10.0, 200.0)]
    assert workload.total_duration == 15.0
    assert workload.duration is None


def test_closed_stages(tmp_path: Path) -> None:
    text = (
        '[workload]\nstages = [{ duration = "5s", sessions = 2 }, { duration = "5s", sessions = 8 }]\n' + ECHO
    )
    workload = load_scenario(write(tmp_path, text)).workload
    assert [s.sessions for s in workload.stages] == [2, 8]
    assert workload.max_sessions == 8


# -- overrides from the command line -----------------------------------------------------------


def test_overrides_replace_file_values(tmp_path: Path) -> None:
    path = write(tmp_path, '[workload]\nsessions = 2\nduration = "5s"\n' + ECHO)
    scenario = load_scenario(
        path, {"workload.sessions": 7, "workload.duration": "2m", "workload.requests": None}
    )
    assert scenario.workload.sessions == 7
    assert scenario.workload.duration == 120.0


def test_an_override_rate_switches_to_the_open_model() -> None:
    workload = load_scenario(None, {"workload.rate": "20/m"}).workload
    assert workload.model == "open"
    assert workload.rate == pytest.approx(1 / 3)


def test_an_override_rate_turns_a_closed_scenario_open(tmp_path: Path) -> None:
    path = write(tmp_path, '[workload]\nmodel = "closed"\nthink_time = "1s"\n' + ECHO)
    workload = load_scenario(path, {"workload.rate": "5/s"}).workload
    assert (workload.model, workload.rate, workload.think_time) == ("open", 5.0, 0.0)


def test_an_override_rate_cannot_replace_stages(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[workload]\nmodel = "open"\nstages = [{ duration = "1s", rate = "1/s" }]\n' + ECHO
    )
    assert load_error(path, {"workload.rate": "5/s"}) == (
        "(from the command line) workload.rate: the stages set the rate; drop workload.rate or the stages"
    )


def test_bad_override_values_are_attributed_to_the_command_line() -> None:
    assert load_error(None, {"workload.sessions": 0}) == (
        "(from the command line) workload.sessions: expected a whole number >= 1, got 0"
    )
    assert load_error(None, {"workload.rate": "fast"}) == (
        "(from the command line) workload.rate: expected a rate like '200/s' or '300/h', got 'fast'"
    )


def test_override_requests_replaces_the_file_duration() -> None:
    workload = load_scenario(None, {"workload.requests": 100}).workload
    assert workload.requests == 100
    assert workload.duration is None


def test_override_transports() -> None:
    assert load_scenario(None, {"transports": ["http"]}).transports == ("http",)
    assert load_scenario(None, {"transports": "stdio,sse"}).transports == ("stdio", "sse")
    assert load_scenario(None, {"transports": "all"}).transports == ("stdio", "sse", "http")
    assert load_error(None, {"transports": ["tcp"]}).startswith(
        "(from the command line) transports[0]: expected one of"
    )


def test_override_url_turns_the_reference_server_off(tmp_path: Path) -> None:
    path = write(tmp_path, "[target]\njson_response = true\n" + ECHO)
    scenario = load_scenario(path, {"target.url": "http://127.0.0.1:9/mcp"})
    assert not scenario.target.reference
    assert scenario.transports == ("http",)  # one URL is one transport
    assert scenario.url_for("http") == "http://127.0.0.1:9/mcp"
    assert scenario.command_for("http", 1, "py") is None
    sse = load_scenario(None, {"target.url": "http://127.0.0.1:9/sse"})
    assert sse.transports == ("sse",)
    message = load_error(None, {"target.url": "http://127.0.0.1:9/mcp", "transports": ["stdio", "http"]})
    assert message.startswith("(from the command line) transports: stdio needs a server to launch")


def test_override_command_replaces_the_file_url(tmp_path: Path) -> None:
    path = write(tmp_path, '[target]\nurl = "http://127.0.0.1:9/mcp"\n' + ECHO)
    scenario = load_scenario(path, {"target.command": "srv --transport {transport}"})
    assert not scenario.target.reference
    assert scenario.target.url is None
    assert scenario.command_for("http", 1, "py") == ["srv", "--transport", "streamable-http"]


# -- target ----------------------------------------------------------------------------------------


def test_command_placeholders_are_filled_per_transport(tmp_path: Path) -> None:
    text = "[target]\ncommand = \"{python} -m 'my server' --transport {transport} --port {port}\"\n" + ECHO
    scenario = load_scenario(write(tmp_path, text))
    assert not scenario.target.reference
    python = "/opt/my python/bin/python"
    assert scenario.command_for("sse", 8123, python) == [
        python, "-m", "my server", "--transport", "sse", "--port", "8123",
    ]  # fmt: skip
    assert scenario.command_for("stdio", None, python) == [
        python, "-m", "my server", "--transport", "stdio", "--port", "0",
    ]  # fmt: skip
    assert scenario.url_for("http") is None


def test_a_url_table_gives_one_url_per_transport(tmp_path: Path) -> None:
    text = '[target]\nurl = { sse = "http://h:1/sse", http = "http://h:1/mcp" }\n' + ECHO
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.transports == ("sse", "http")
    assert scenario.url_for("sse") == "http://h:1/sse"
    assert scenario.url_for("http") == "http://h:1/mcp"
    assert scenario.url_for("stdio") is None
    message = load_error(
        write(tmp_path, 'transports = ["sse", "http"]\n[target]\nurl = { http = "http://h:1/mcp" }\n' + ECHO)
    )
    assert "target.url: no URL for transport 'sse'" in message


def test_headers_and_env_are_expanded_and_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOADTEST_TEST_TOKEN", "s3cret")
    text = (
        """
[target]
url = "http://127.0.0.1:9/mcp"
headers = { Authorization = "Bearer ${LOADTEST_TEST_TOKEN}", X-Plain = "visible?" }
env = { API_KEY = "${LOADTEST_TEST_TOKEN}", MODE = "${LOADTEST_SURELY_UNSET_VAR:-fast}" }
"""
        + ECHO
    )
    scenario = load_scenario(write(tmp_path, text))
    assert scenario.target.headers == {"Authorization": "Bearer s3cret", "X-Plain": "visible?"}
    assert scenario.target.env == {"API_KEY": "s3cret", "MODE": "fast"}
    data = scenario.to_dict()
    assert data["target"]["headers"] == {"Authorization": "<redacted>", "X-Plain": "<redacted>"}
    assert data["target"]["env"] == {"API_KEY": "<redacted>", "MODE": "<redacted>"}
    assert "s3cret" not in json.dumps(data)


# -- rendering requests --------------------------------------------------------------------------


def test_render_substitutes_nonce_and_seed(tmp_path: Path) -> None:
    text = """
[[ops]]
tool = "blob"
arguments = { n_bytes = 64, seed = "{seed}", label = "n={nonce} s={seed}", nested = { list = ["{nonce}", 1, "{seed}"] } }
expect = { blob = true }
[[ops]]
uri = "blob://65536/{seed}"
[[ops]]
prompt = "greet"
arguments = { name = "{nonce}", id = "{seed}" }
expect = { text = "Hello, {nonce}!" }
"""
    blob, read, greet = load_scenario(write(tmp_path, text)).ops
    assert blob.render("abc", 42) == {
        "name": "blob",
        "arguments": {"n_bytes": 64, "seed": 42, "label": "n=abc s=42", "nested": {"list": ["abc", 1, 42]}},
    }
    # every render is a fresh dict built from an untouched template
    again = blob.render("def", 7)
    assert again is not None
    assert again["arguments"]["nested"] == {"list": ["def", 1, 7]}
    assert blob.arguments is not None
    assert blob.arguments["seed"] == "{seed}"
    assert read.render("abc", 9) == {"uri": "blob://65536/9"}
    # prompt arguments are strings by the MCP schema: "{seed}" stays a string
    assert greet.render("abc", 5) == {"name": "greet", "arguments": {"name": "abc", "id": "5"}}
    assert greet.expected_text("abc", 5) == "Hello, abc!"
    assert blob.expected_text("abc", 5) is None


def test_render_without_placeholders_shares_one_dict(tmp_path: Path) -> None:
    text = '[[ops]]\ntool = "echo"\narguments = { text = "constant" }\n[[ops]]\nmethod = "ping"\n'
    echo, ping = load_scenario(write(tmp_path, text)).ops
    first = echo.render("a", 1)
    assert first == {"name": "echo", "arguments": {"text": "constant"}}
    assert echo.render("b", 2) is first
    assert ping.render("a", 1) is None


def test_ops_can_be_built_directly() -> None:
    op = Op(name="e", method="tools/call", tool="echo", arguments={"text": "{nonce}"})
    assert op.render("x", 1) == {"name": "echo", "arguments": {"text": "x"}}
    assert Op(name="t", method="tools/call", tool="t").render("x", 1) == {"name": "t", "arguments": {}}


def test_expectations_are_parsed(tmp_path: Path) -> None:
    digest = "AB" * 32
    text = f"""
[[ops]]
name = "a"
tool = "sleep"
expect = {{ regex = "^slept \\\\d+" }}
[[ops]]
name = "b"
tool = "fail"
expect = {{ is_error = true }}
[[ops]]
name = "c"
tool = "echo"
expect = {{ sha256 = "{digest}" }}
[[ops]]
name = "d"
tool = "echo"
expect = {{ json = {{ content = [{{ type = "text" }}] }}, consistent = false }}
[[ops]]
name = "e"
tool = "echo"
expect = {{ consistent = true }}
"""
    a, b, c, d, e = load_scenario(write(tmp_path, text)).ops
    assert a.expect.regex is not None
    assert a.expect.regex.search("slept 12 x")
    assert a.expect.kind == "regex"
    assert b.expect.is_error
    assert b.expect.kind is None
    assert c.expect.sha256 == digest.lower()
    assert d.expect.json == {"content": [{"type": "text"}]}
    assert e.expect.kind == "consistent"


# -- hash and to_dict --------------------------------------------------------------------------------


def test_hash_is_stable_and_ignores_labels(tmp_path: Path) -> None:
    base = load_scenario(write(tmp_path, ECHO, "a.toml"))
    relabelled = load_scenario(
        write(tmp_path, 'name = "other"\ndescription = "words"\nthresholds = ["p99 < 1s"]\n' + ECHO, "b.toml")
    )
    assert base.scenario_hash == load_scenario(tmp_path / "a.toml").scenario_hash
    assert relabelled.scenario_hash == base.scenario_hash
    changed = load_scenario(write(tmp_path, "[workload]\nsessions = 5\n" + ECHO, "c.toml"))
    assert changed.scenario_hash != base.scenario_hash
    assert load_scenario(tmp_path / "a.toml", {"workload.sessions": 5}).scenario_hash == changed.scenario_hash


def test_the_package_split_left_the_hashes_of_the_shipped_scenarios_as_they_were() -> None:
    # Pinned when scenario.py became a package: equal hashes are what lets runs made before
    # the split be compared with runs made after it.
    pinned = {
        "default.toml": "38cfd37162c706a2",
        "large-blob.toml": "9ee704edd12bf0db",
        "upgrade.toml": "68d6d16049dfb807",
    }
    assert {name: load_scenario(SCENARIOS / name).scenario_hash for name in pinned} == pinned


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_ops_pickle_and_render_the_same_after(path: Path) -> None:
    # Worker processes still receive the scenario by pickle; the compiled renderers are
    # closures, so Op rebuilds them from its declared fields.
    for op in load_scenario(path).ops:
        copy = pickle.loads(pickle.dumps(op))
        assert copy.to_dict() == op.to_dict()
        assert copy.render("nonce-abc123-0000000001", 7) == op.render("nonce-abc123-0000000001", 7)
        assert copy.expected_text("nonce-abc123-0000000001", 7) == op.expected_text(
            "nonce-abc123-0000000001", 7
        )


def test_ops_with_every_newer_key_pickle_and_render_the_same_after(tmp_path: Path) -> None:
    text = """
[[ops]]
name = "echo"
tool = "echo"
arguments = { text = "{nonce} {seed}" }
check_foreign_nonces = false
expect = { regex = '^{nonce} {seed}$' }

[[ops]]
name = "pair"
tool = "pair"
arguments = { nonce = "{nonce}", seed = "{seed}" }
expect = { json = { structuredContent = { nonce = "{nonce}", seed = "{seed}" } } }

[[ops]]
method = "tools/list"
expect = { tools = ["echo"], min_items = 1, max_items = 9 }
"""
    nonce = "nonce-abc123-0000000001"
    for op in load_scenario(write(tmp_path, text)).ops:
        copy = pickle.loads(pickle.dumps(op))
        assert copy.to_dict() == op.to_dict()
        assert copy.checks_foreign_nonces == op.checks_foreign_nonces
        for method in ("render", "expected_regex", "expected_json", "expected_names"):
            assert repr(getattr(copy, method)(nonce, 7)) == repr(getattr(op, method)(nonce, 7)), method
    echo, pair, listing = load_scenario(tmp_path / "x.toml").ops
    assert echo.expected_regex(nonce, 7).fullmatch(f"{nonce} 7")  # type: ignore[union-attr]
    assert not echo.expected_regex(nonce, 7).fullmatch("nonce-abc123-0000000002 7")  # type: ignore[union-attr]
    # An exact "{seed}" in json matches the number or its text.
    assert pair.expected_json(nonce, 7)["structuredContent"]["seed"] == 7
    assert pair.expected_json(nonce, 7)["structuredContent"]["seed"] == "7"
    assert pair.expected_json(nonce, 7)["structuredContent"]["seed"] != 8
    assert (echo.checks_foreign_nonces, pair.checks_foreign_nonces, listing.checks_foreign_nonces) == (
        False,
        True,
        False,
    )
    # Keys given only when set: a scenario without them keeps its hash.
    assert "check_foreign_nonces" not in pair.to_dict()
    assert listing.to_dict()["expect"] == {
        "is_error": False,
        "min_items": 1,
        "max_items": 9,
        "names": ["echo"],
    }


def test_no_scenario_module_is_over_400_lines() -> None:
    package = Path(__file__).resolve().parent.parent / "loadtest" / "scenario"
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in package.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 420} == {}


def test_to_dict_is_the_resolved_scenario() -> None:
    data = load_scenario(None).to_dict()
    assert set(data) == {
        "name",
        "description",
        "source",
        "transports",
        "target",
        "workload",
        "ops",
        "thresholds",
    }
    assert data["workload"]["duration"] == 5.0
    assert data["ops"][0]["expect"] == {"text": "hello {nonce}", "is_error": False}
    assert json.loads(json.dumps(data)) == data


# -- units ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("500us", 0.0005),
        ("2", 2.0),
        (3, 3.0),
        (0.5, 0.5),
        (" 1m 5s ", 65.0),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "5x", "-1s", "s", "1h-5m", "nan"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("200/s", 200.0),
        ("300/h", 300 / 3600),
        ("20/m", 20 / 60),
        ("1.5/s", 1.5),
        ("200", 200.0),
        (7, 7.0),
        ("1/250ms", 4.0),
    ],
)
def test_parse_rate(text: str | float, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["fast", "/s", "5/", "5/x", "-5/s", "5/0s"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1.2, "1.2s"),
        (0.35, "350ms"),
        (7525, "2h05m"),
        (30, "30s"),
        (330, "5m30s"),
        (0.0025, "2.5ms"),
        (0.0004, "400us"),
        (3600, "1h"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds, rel=0.01)


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (812, "812us"),
        (12_300, "12.3ms"),
        (1_200_000, "1.20s"),
        (999.7, "1.00ms"),
        (1234, "1.23ms"),
        (456_000, "456ms"),
    ],
)
def test_format_latency_us(us: float, text: str) -> None:
    assert format_latency_us(us) == text


def test_transport_names_and_port_fill_command_and_env(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[target]\ncommand = "srv {transport}"\ntransport_names = { http = "streamableHttp" }\n'
        'env = { PORT = "{port}", MODE = "{transport}" }\n[[ops]]\nmethod = "ping"\n'
    )
    scenario = load_scenario(path)
    assert scenario.command_for("http", 8123, "py") == ["srv", "streamableHttp"]
    assert scenario.command_for("sse", 8123, "py") == ["srv", "sse"]
    assert scenario.env_for("http", 8123, "py") == {"PORT": "8123", "MODE": "streamableHttp"}


def test_transport_names_reject_unknown_transports(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[target]\ncommand = "srv"\ntransport_names = { grpc = "x" }\n')
    with pytest.raises(UsageError, match=r"target\.transport_names\.grpc: expected stdio, sse or http"):
        load_scenario(path)
