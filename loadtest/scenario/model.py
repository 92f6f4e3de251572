"""Scenario files: what to run, against what, how hard, and what counts as right.

:func:`load_scenario` reads a TOML file (or the bundled default), applies command-line
overrides, and validates everything up front: a mistake is one :class:`UsageError` line naming
the file and the key (``scenarios/x.toml: workload.rate: expected a rate like '200/s' ...``),
never a traceback half-way through a run.

Durations are seconds and rates are calls per second once loaded. Header and ``env`` values may
use ``${VAR}`` (or ``${VAR:-default}``), expanded from the environment at load time; they are
secrets, so :meth:`Scenario.to_dict` redacts them.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.resources
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

from loadtest.core.errors import UsageError
from loadtest.core.units import parse_duration, parse_rate
from loadtest.scenario.thresholds import Threshold, parse_threshold

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "METHODS",
    "TRANSPORTS",
    "Expect",
    "Health",
    "Op",
    "Scenario",
    "Soak",
    "Stage",
    "Target",
    "Workload",
    "load_scenario",
]

TRANSPORTS: tuple[str, ...] = ("stdio", "sse", "http")
METHODS: tuple[str, ...] = ("tools/call", "resources/read", "prompts/get", "tools/list", "ping")
#: What ``{transport}`` becomes in a target command: the names servers' ``--transport`` flags use.
COMMAND_TRANSPORT = {"stdio": "stdio", "sse": "sse", "http": "streamable-http"}
BUNDLED_DEFAULT = "<bundled default>"
FROM_COMMAND_LINE = "(from the command line)"
REDACTED = "<redacted>"

_EXPECT_KINDS = ("text", "regex", "length", "sha256", "json", "blob", "consistent")
_COMMAND_PLACEHOLDERS = ("transport", "port", "python")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BLOB_URI = re.compile(r"blob://\d+(?:/\d+)?")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOML_WHERE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")

_TOP_KEYS = ("name", "description", "transports", "target", "workload", "ops", "thresholds", "health", "soak")
_TARGET_KEYS = (
    "reference",
    "command",
    "url",
    "headers",
    "env",
    "ready_timeout",
    "json_response",
    "stateless",
    "delay_ms",
    "transport_names",
    "restart",
    "leak_kb_per_session",
)
_REFERENCE_ONLY = ("json_response", "stateless", "delay_ms", "leak_kb_per_session")
_WORKLOAD_KEYS = (
    "model",
    "sessions",
    "duration",
    "requests",
    "rate",
    "think_time",
    "warmup",
    "churn",
    "max_in_flight",
    "get_stream",
    "request_timeout",
    "connect_timeout",
    "stages",
    "close_sessions",
)
_CLOSE_SESSIONS = ("delete", "abandon")
_HEALTH_KEYS = ("sample_every", "warmup", "idle", "hang_after")
_SOAK_KEYS = ("status_every",)
_STAGE_KEYS = ("duration", "rate", "sessions")
_OP_KEYS = (
    "name",
    "method",
    "tool",
    "arguments",
    "uri",
    "prompt",
    "weight",
    "progress",
    "expect_progress",
    "expect",
)
_EXPECT_KEYS = (*_EXPECT_KINDS, "is_error")
#: Which of tool/uri/prompt/arguments each method takes (and requires, for the first three).
_METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    "tools/call": ("tool", "arguments", "progress", "expect_progress"),
    "resources/read": ("uri",),
    "prompts/get": ("prompt", "arguments"),
    "tools/list": (),
    "ping": (),
}
_METHOD_REQUIRES = {"tools/call": "tool", "resources/read": "uri", "prompts/get": "prompt"}

DEFAULT_SESSIONS = 4
DEFAULT_DURATION_S = 10.0
DEFAULT_WARMUP_S = 1.0
DEFAULT_REQUEST_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 20.0
DEFAULT_READY_TIMEOUT_S = 20.0
DEFAULT_SAMPLE_EVERY_S = 1.0
DEFAULT_STATUS_EVERY_S = 60.0
#: The default memory warm-up: the call warm-up plus this share of the planned duration.
HEALTH_WARMUP_SHARE = 0.2

# --------------------------------------------------------------------------------------------
# Placeholders: decided once at load time, so that rendering a request on the hot path is a
# few str.replace calls on just the strings that need them, and nothing at all otherwise.

_Render = Callable[[str, int], Any]


def _compile_value(value: Any, *, seed_as_int: bool) -> _Render | None:
    """A function building ``value`` with ``{nonce}``/``{seed}`` filled in; None if it has none."""
    if isinstance(value, str):
        return _compile_str(value, seed_as_int=seed_as_int)
    if isinstance(value, dict):
        parts = [(k, r) for k, v in value.items() if (r := _compile_value(v, seed_as_int=seed_as_int))]
        if not parts:
            return None
        template = dict(value)

        def render_dict(nonce: str, seed: int) -> dict[str, Any]:
            out = template.copy()
            for key, render in parts:
                out[key] = render(nonce, seed)
            return out

        return render_dict
    if isinstance(value, list):
        items = [(i, r) for i, v in enumerate(value) if (r := _compile_value(v, seed_as_int=seed_as_int))]
        if not items:
            return None
        template_list = list(value)

        def render_list(nonce: str, seed: int) -> list[Any]:
            out = template_list.copy()
            for index, render in items:
                out[index] = render(nonce, seed)
            return out

        return render_list
    return None


def _compile_str(text: str, *, seed_as_int: bool) -> _Render | None:
    if text == "{seed}" and seed_as_int:
        return lambda nonce, seed: seed
    has_nonce, has_seed = "{nonce}" in text, "{seed}" in text
    if has_nonce and has_seed:
        return lambda nonce, seed: text.replace("{nonce}", nonce).replace("{seed}", str(seed))
    if has_nonce:
        return lambda nonce, seed: text.replace("{nonce}", nonce)
    if has_seed:
        return lambda nonce, seed: text.replace("{seed}", str(seed))
    return None


def _constant(value: Any) -> _Render:
    return lambda nonce, seed: value


# --------------------------------------------------------------------------------------------
# The loaded scenario.


@dataclass(frozen=True, slots=True)
class Expect:
    """What a right answer looks like. At most one of the content checks is set."""

    text: str | None = None
    regex: re.Pattern[str] | None = None
    length: int | None = None
    sha256: str | None = None
    json: dict[str, Any] | None = None
    blob: bool = False
    consistent: bool = False
    is_error: bool = False

    @property
    def kind(self) -> str | None:
        """Which content check is set (``"text"``, ``"blob"``, ...), or None."""
        for kind in _EXPECT_KINDS:
            if getattr(self, kind) not in (None, False):
                return kind
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        kind = self.kind
        if kind == "regex":
            assert self.regex is not None
            out["regex"] = self.regex.pattern
        elif kind is not None:
            out[kind] = getattr(self, kind)
        out["is_error"] = self.is_error
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Op:
    """One kind of call in the weighted mix.

    :meth:`render` builds the request's ``params``; strings in ``arguments`` and ``uri`` may hold
    ``{nonce}`` and ``{seed}``, and an argument that is exactly ``"{seed}"`` becomes the int.
    """

    name: str
    method: str
    tool: str | None = None
    uri: str | None = None
    prompt: str | None = None
    arguments: dict[str, Any] | None = None
    weight: float = 1.0
    progress: bool = False
    expect_progress: int = 0
    expect: Expect = field(default_factory=Expect)
    _render: _Render = field(init=False, repr=False, compare=False)
    _expected_text: _Render | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_render", self._compile_params())
        text = self.expect.text
        expected: _Render | None = None
        if text is not None:
            expected = _compile_str(text, seed_as_int=False) or _constant(text)
        object.__setattr__(self, "_expected_text", expected)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The compiled renderers are closures, which do not pickle; a copy (say, for a
        # generator worker process) compiles its own from the declared fields.
        return (
            Op,
            (
                self.name,
                self.method,
                self.tool,
                self.uri,
                self.prompt,
                self.arguments,
                self.weight,
                self.progress,
                self.expect_progress,
                self.expect,
            ),
        )

    def _compile_params(self) -> _Render:
        if self.method == "tools/call":
            params: dict[str, Any] = {"name": self.tool, "arguments": dict(self.arguments or {})}
            seed_as_int = True
        elif self.method == "resources/read":
            params = {"uri": self.uri}
            seed_as_int = False
        elif self.method == "prompts/get":
            params = {"name": self.prompt}
            if self.arguments is not None:
                params["arguments"] = dict(self.arguments)
            # Prompt arguments are strings by the MCP schema, so "{seed}" stays a string.
            seed_as_int = False
        else:
            return _constant(None)
        return _compile_value(params, seed_as_int=seed_as_int) or _constant(params)

    def render(self, nonce: str, seed: int) -> dict[str, Any] | None:
        """The JSON-RPC ``params`` for one request (None for ``tools/list`` and ``ping``).

        Without placeholders the same dict is returned every time: treat it as read-only.
        """
        result: dict[str, Any] | None = self._render(nonce, seed)
        return result

    def expected_text(self, nonce: str, seed: int) -> str | None:
        """``expect.text`` with the request's ``{nonce}``/``{seed}`` filled in, or None."""
        if self._expected_text is None:
            return None
        text: str = self._expected_text(nonce, seed)
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "method": self.method}
        for key in ("tool", "uri", "prompt", "arguments"):
            if (value := getattr(self, key)) is not None:
                out[key] = value
        out["weight"] = self.weight
        if self.method == "tools/call":
            out["progress"] = self.progress
            out["expect_progress"] = self.expect_progress
        out["expect"] = self.expect.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class Target:
    """The server under test: the bundled reference server, a command to launch, or a URL."""

    reference: bool = True
    command: str | None = None
    argv: tuple[str, ...] | None = None
    url: str | dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = DEFAULT_READY_TIMEOUT_S
    json_response: bool = False
    stateless: bool = False
    delay_ms: float = 0.0
    #: What ``{transport}`` becomes per transport, for servers with their own names for them
    #: (e.g. ``{ http = "streamableHttp" }``); default stdio, sse, streamable-http.
    transport_names: dict[str, str] = field(default_factory=dict)
    #: A launched target that dies or hangs is launched again (restarts counted), instead of
    #: ending the transport's run there.
    restart: bool = False
    #: Reference server: keep this many KiB per HTTP session, forever (a deliberate leak).
    leak_kb_per_session: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": self.reference,
            "command": self.command,
            "url": self.url,
            "headers": dict.fromkeys(self.headers, REDACTED),
            "env": dict.fromkeys(self.env, REDACTED),
            "ready_timeout": self.ready_timeout,
        }
        if self.transport_names:
            out["transport_names"] = dict(self.transport_names)
        if self.reference:
            out.update(json_response=self.json_response, stateless=self.stateless, delay_ms=self.delay_ms)
        # Only when set, so that the scenario hash of every scenario without them is unchanged.
        if self.restart:
            out["restart"] = True
        if self.leak_kb_per_session:
            out["leak_kb_per_session"] = self.leak_kb_per_session
        return out


@dataclass(frozen=True, slots=True)
class Stage:
    """One ramp stage: over ``duration`` seconds move linearly to ``rate`` (open) or ``sessions`` (closed)."""

    duration: float
    rate: float | None = None
    sessions: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"duration": self.duration}
        if self.rate is not None:
            out["rate"] = self.rate
        if self.sessions is not None:
            out["sessions"] = self.sessions
        return out


@dataclass(frozen=True, slots=True)
class Workload:
    """How hard and how long, per transport. Times in seconds, rates in calls per second."""

    model: Literal["closed", "open"] = "closed"
    sessions: int = DEFAULT_SESSIONS
    duration: float | None = DEFAULT_DURATION_S
    requests: int = 0
    rate: float | None = None
    think_time: float = 0.0
    warmup: float = DEFAULT_WARMUP_S
    churn: int = 0
    #: Open model: calls one session may have outstanding at once (0 = no limit). With 1, as
    #: with wrk2's connections, a stalled server delays the next sends, and the latency from
    #: the intended send time (coordinated-omission corrected) shows the stall in full.
    max_in_flight: int = 1
    #: Streamable HTTP: open the optional GET stream for server-initiated messages after
    #: initialising, as the SDK clients do (older servers send progress notifications there).
    get_stream: bool = True
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    stages: tuple[Stage, ...] = ()
    #: How a session ends: ``delete`` (Streamable HTTP sends DELETE, as the spec asks) or
    #: ``abandon`` (it is just dropped). Legacy SSE and stdio sessions end by dropping the
    #: stream or closing stdin either way.
    close_sessions: Literal["delete", "abandon"] = "delete"

    @property
    def total_duration(self) -> float | None:
        """The measured part's length (after warm-up): the stages' sum, or ``duration``."""
        if self.stages:
            return sum(stage.duration for stage in self.stages)
        return self.duration

    @property
    def max_sessions(self) -> int:
        """The most sessions open at once (closed-model stages may change the count)."""
        if self.stages and self.model == "closed":
            return max(stage.sessions or 0 for stage in self.stages)
        return self.sessions

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "sessions": self.sessions,
            "duration": self.duration,
            "requests": self.requests,
            "rate": self.rate,
            "think_time": self.think_time,
            "warmup": self.warmup,
            "churn": self.churn,
            "max_in_flight": self.max_in_flight,
            "get_stream": self.get_stream,
            "request_timeout": self.request_timeout,
            "connect_timeout": self.connect_timeout,
            "stages": [stage.to_dict() for stage in self.stages],
            # Only when set: the hash of every scenario without it stays what it was.
            **({"close_sessions": self.close_sessions} if self.close_sessions != "delete" else {}),
        }


@dataclass(frozen=True, slots=True)
class Health:
    """How a launched target's health is watched (``[health]``); times in seconds."""

    #: Time between samples of the target's memory, CPU, descriptors and threads.
    sample_every: float = DEFAULT_SAMPLE_EVERY_S
    #: Time after each server start left out of the memory slopes; None: the call warm-up
    #: plus a fifth of the planned duration (see :meth:`warmup_for`).
    warmup: float | None = None
    #: After the load, keep the server up this long and sample what it gives back.
    idle: float = 0.0
    #: No answer for this long, with calls lost meanwhile, is a hang; None: one request
    #: timeout (see :meth:`hang_after_for`).
    hang_after: float | None = None

    def warmup_for(self, workload: Workload) -> float:
        if self.warmup is not None:
            return self.warmup
        planned = workload.total_duration or 0.0
        return workload.warmup + HEALTH_WARMUP_SHARE * planned

    def hang_after_for(self, workload: Workload) -> float:
        if self.hang_after is not None:
            return self.hang_after
        # Nothing answered for a whole request deadline, while calls were lost meanwhile, is a
        # hang by any reading; waiting longer (it was three deadlines, at least a minute) let
        # a 10-30 s run end as a clean pass with no calls measured.
        return workload.request_timeout

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_every": self.sample_every,
            "warmup": self.warmup,
            "idle": self.idle,
            "hang_after": self.hang_after,
        }


@dataclass(frozen=True, slots=True)
class Soak:
    """Soak mode (``[soak]``): hours at a low rate, with a status line for the job's log."""

    #: Time between one-line status reports (progress, server and generator memory).
    status_every: float = DEFAULT_STATUS_EVERY_S

    def to_dict(self) -> dict[str, Any]:
        return {"status_every": self.status_every}


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario; build it with :func:`load_scenario`."""

    name: str
    description: str
    source: str
    transports: tuple[str, ...]
    target: Target
    workload: Workload
    ops: tuple[Op, ...]
    thresholds: tuple[Threshold, ...] = ()
    health: Health = field(default_factory=Health)
    #: Soak mode, when the scenario has a ``[soak]`` table.
    soak: Soak | None = None

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(op.weight for op in self.ops)

    def url_for(self, transport: str) -> str | None:
        """The URL to reach ``transport`` at, when the target is a running server."""
        url = self.target.url
        if url is None or transport == "stdio":
            return None
        if isinstance(url, str):
            return url
        return url.get(transport)

    def command_for(self, transport: str, port: int | None, python: str) -> list[str] | None:
        """The target command's argv for ``transport`` with its placeholders filled, or None.

        ``{transport}`` becomes ``stdio``, ``sse`` or ``streamable-http``. With no port (stdio)
        ``{port}`` becomes ``0``, so one command line serves every transport.
        """
        if self.target.argv is None:
            return None
        return [self._fill(arg, transport, port, python) for arg in self.target.argv]

    def env_for(self, transport: str, port: int | None, python: str) -> dict[str, str]:
        """``target.env`` for ``transport``, with the same placeholders filled as the command."""
        return {name: self._fill(value, transport, port, python) for name, value in self.target.env.items()}

    def _fill(self, text: str, transport: str, port: int | None, python: str) -> str:
        name = self.target.transport_names.get(transport) or COMMAND_TRANSPORT.get(transport, transport)
        return text.replace("{transport}", name).replace("{port}", str(port or 0)).replace("{python}", python)

    def to_dict(self) -> dict[str, Any]:
        """The resolved scenario as plain JSON data (secrets redacted), as run.json records it."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "transports": list(self.transports),
            "target": self.target.to_dict(),
            "workload": self.workload.to_dict(),
            "ops": [op.to_dict() for op in self.ops],
            "thresholds": [t.expr for t in self.thresholds],
            # Only when given, so that run.json of a scenario without them is as it was.
            **({"health": self.health.to_dict()} if self.health != Health() else {}),
            **({"soak": self.soak.to_dict()} if self.soak is not None else {}),
        }

    @property
    def scenario_hash(self) -> str:
        """Identifies what was measured: equal hashes mean comparable runs.

        Labels (name, description, source), the pass/fail thresholds and how health is watched
        (``health``, ``soak``) are left out: they do not change the measurement.
        """
        data = self.to_dict()
        for key in ("name", "description", "source", "thresholds", "health", "soak"):
            data.pop(key, None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# Loading and validation.


class _Context:
    """Where values came from, so every error names the file (or the command line) and the key."""

    def __init__(self, file: str, cli_keys: set[str]) -> None:
        self.file = file
        self.cli_keys = cli_keys

    def from_cli(self, key: str) -> bool:
        return any(key == k or key.startswith((f"{k}.", f"{k}[")) for k in self.cli_keys)

    def fail(self, key: str, what: str) -> NoReturn:
        if self.from_cli(key):
            raise UsageError(f"{FROM_COMMAND_LINE} {key}: {what}")
        raise UsageError(f"{self.file}: {key}: {what}")


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def _did_you_mean(word: Any, choices: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or nothing."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(ctx: _Context, table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            if where and key in _TOP_KEYS:
                # TOML puts every key after a [table] header into that table.
                hint = f" ({key!r} is a top-level key: move it above the first [table] header)"
            else:
                hint = _did_you_mean(key, known) or f" (known keys: {', '.join(known)})"
            ctx.fail(f"{where}{key}", f"unknown key{hint}")


def _table(ctx: _Context, value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        ctx.fail(key, f"expected a table, got {_got(value)}")
    return value


def _string(ctx: _Context, value: Any, key: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        ctx.fail(key, f"expected a string, got {_got(value)}")
    if not empty and not value.strip():
        ctx.fail(key, "expected a non-empty string, got ''")
    return value


def _bool(ctx: _Context, value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        ctx.fail(key, f"expected true or false, got {_got(value)}")
    return value


def _int(ctx: _Context, value: Any, key: str, *, minimum: int = 0) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        ctx.fail(key, f"expected a whole number, got {_got(value)}")
    if value < minimum:
        ctx.fail(key, f"expected a whole number >= {minimum}, got {value}")
    return value


def _number(ctx: _Context, value: Any, key: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        ctx.fail(key, f"expected a number, got {_got(value)}")
    if value < 0 or (positive and value == 0) or value != value:
        ctx.fail(key, f"expected a {'positive' if positive else 'non-negative'} number, got {value}")
    return float(value)


def _duration(ctx: _Context, value: Any, key: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        ctx.fail(key, f"expected a duration like '30s' or '5m', got {_got(value)}")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        ctx.fail(key, str(exc))
    if positive and seconds <= 0:
        ctx.fail(key, f"expected a duration greater than zero, got {_got(value)}")
    return seconds


def _rate(ctx: _Context, value: Any, key: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        ctx.fail(key, f"expected a rate like '200/s' or '300/h', got {_got(value)}")
    try:
        rate = parse_rate(value)
    except ValueError as exc:
        ctx.fail(key, str(exc))
    if positive and rate <= 0:
        ctx.fail(key, f"expected a rate greater than zero, got {_got(value)}")
    return rate


def _jsonable(ctx: _Context, value: Any, key: str) -> None:
    """TOML has dates and times; JSON-RPC does not."""
    if isinstance(value, dict):
        for k, v in value.items():
            _jsonable(ctx, v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _jsonable(ctx, v, f"{key}[{i}]")
    elif not isinstance(value, (str, int, float, bool)):
        ctx.fail(key, f"expected a JSON value (string, number, boolean, array or table), got {_got(value)}")


def _expand_env(ctx: _Context, text: str, key: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None:
            if default is None:
                ctx.fail(
                    key, f"environment variable {name} is not set (use ${{{name}:-default}} for a fallback)"
                )
            return default
        return value

    return _ENV_VAR.sub(replace, text)


# -- the file --------------------------------------------------------------------------------


def _read_toml(text: str, file: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_WHERE.search(message)
        if where is None:
            raise UsageError(f"{file}: invalid TOML: {message}") from None
        reason = message[: where.start()]
        if where.group(1) is None:
            raise UsageError(f"{file}: at the end of the file: invalid TOML: {reason}") from None
        raise UsageError(
            f"{file}: line {where.group(1)}, column {where.group(2)}: invalid TOML: {reason}"
        ) from None
    return data


def _read_bundled(name: str) -> str:
    return (importlib.resources.files("loadtest.scenarios") / name).read_text(encoding="utf-8")


def load_scenario(path: Path | str | None, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Load, override and validate a scenario; ``path=None`` is the bundled default.

    ``overrides`` maps dotted keys to command-line values (None values are ignored):
    ``transports`` (a list, or ``"all"``/``"stdio,http"``), ``target.command``, ``target.url``,
    ``workload.sessions``, ``workload.duration``, ``workload.requests``, ``workload.rate``.
    They are applied before validation, so bad values get the same messages, attributed to the
    command line. Raises :class:`UsageError` for every problem.
    """
    if path is None:
        file = source = BUNDLED_DEFAULT
        stem = "default"
        text = _read_bundled("default.toml")
    else:
        path = Path(path)
        file = source = str(path)
        stem = path.stem
        if not path.exists():
            raise UsageError(f"scenario file not found: {path}")
        if not path.is_file():
            raise UsageError(f"scenario path is not a file: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{file}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise UsageError(f"cannot read scenario file {path}: {exc.strerror or exc}") from None
    data = _read_toml(text, file)
    cli_keys = _apply_overrides(data, overrides or {}, file)
    return _build(_Context(file, cli_keys), data, source=source, stem=stem)


def scenario_from_data(data: Mapping[str, Any], *, source: str) -> Scenario:
    """Validate a scenario given as data rather than a file (a generator worker's job).

    ``data`` has the shape of a scenario file's tables (for instance :meth:`Scenario.to_dict`'s
    sections with ``None`` values left out); it gets the same checks and messages as a file.
    """
    return _build(_Context(source, set()), dict(data), source=source, stem=str(data.get("name", "scenario")))


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], file: str) -> set[str]:
    cli_keys: set[str] = set()
    given = {key: value for key, value in overrides.items() if value is not None}
    for key, value in given.items():
        head, _, leaf = key.rpartition(".")
        if key.split(".")[0] not in _TOP_KEYS:
            raise UsageError(f"{FROM_COMMAND_LINE} {key}: unknown scenario key")
        table = data
        for part in head.split(".") if head else ():
            sub = table.setdefault(part, {})
            if not isinstance(sub, dict):
                raise UsageError(f"{file}: {part}: expected a table, got {_got(sub)}")
            table = sub
        if key == "transports" and isinstance(value, str):
            value = list(TRANSPORTS) if value == "all" else [t.strip() for t in value.split(",")]
        table[leaf] = value
        cli_keys.add(key)

    target = data.get("target")
    if isinstance(target, dict) and ({"target.command", "target.url"} & cli_keys):
        # A target given on the command line replaces the file's target, whatever kind it was;
        # the reference server's own options mean nothing for another server.
        for other in ("command", "url", "reference", *_REFERENCE_ONLY):
            if f"target.{other}" not in cli_keys:
                target.pop(other, None)
        if "target.url" in cli_keys:
            # Nothing to relaunch at a URL.
            target.pop("restart", None)
    workload = data.get("workload")
    if isinstance(workload, dict):
        # `--requests 1000` means "make 1000 calls", not "at most 1000 within the file's 10s";
        # and `--duration 1m` likewise replaces a file's request bound.
        if "workload.requests" in cli_keys and "workload.duration" not in cli_keys:
            workload.pop("duration", None)
        if "workload.duration" in cli_keys and "workload.requests" not in cli_keys:
            workload.pop("requests", None)
        if "workload.rate" in cli_keys and "workload.model" not in cli_keys:
            # `--rate` asks for the open model, whatever the file chose; a closed loop's
            # pause between calls has no meaning there.
            workload["model"] = "open"
            workload.pop("think_time", None)
    return cli_keys


def _build(ctx: _Context, data: dict[str, Any], *, source: str, stem: str) -> Scenario:
    _check_keys(ctx, data, _TOP_KEYS, "")
    name = _string(ctx, data.get("name", stem), "name")
    description = _string(ctx, data.get("description", ""), "description", empty=True)
    target = _target(ctx, _table(ctx, data.get("target", {}), "target"))
    transports = _transports(ctx, data, target)
    workload = _workload(ctx, _table(ctx, data.get("workload", {}), "workload"))
    if "ops" in data:
        ops = _ops(ctx, data["ops"])
    elif target.reference:
        # A scenario that only tunes the workload against the reference server gets the
        # default mix rather than an error.
        bundled = _read_toml(_read_bundled("default.toml"), BUNDLED_DEFAULT)
        ops = _ops(_Context(BUNDLED_DEFAULT, set()), bundled["ops"])
    else:
        ctx.fail("ops", 'no operations; add at least one [[ops]] table (e.g. method = "ping")')
    thresholds = _thresholds(ctx, data.get("thresholds", []), ops)
    health = _health(ctx, _table(ctx, data.get("health", {}), "health"))
    soak = _soak(ctx, _table(ctx, data["soak"], "soak")) if "soak" in data else None
    return Scenario(
        name=name,
        description=description,
        source=source,
        transports=transports,
        target=target,
        workload=workload,
        ops=ops,
        thresholds=thresholds,
        health=health,
        soak=soak,
    )


def _health(ctx: _Context, table: dict[str, Any]) -> Health:
    _check_keys(ctx, table, _HEALTH_KEYS, "health.")
    return Health(
        sample_every=_duration(
            ctx, table.get("sample_every", DEFAULT_SAMPLE_EVERY_S), "health.sample_every", positive=True
        ),
        warmup=_duration(ctx, table["warmup"], "health.warmup") if "warmup" in table else None,
        idle=_duration(ctx, table.get("idle", 0.0), "health.idle"),
        hang_after=(
            _duration(ctx, table["hang_after"], "health.hang_after", positive=True)
            if "hang_after" in table
            else None
        ),
    )


def _soak(ctx: _Context, table: dict[str, Any]) -> Soak:
    _check_keys(ctx, table, _SOAK_KEYS, "soak.")
    return Soak(
        status_every=_duration(
            ctx, table.get("status_every", DEFAULT_STATUS_EVERY_S), "soak.status_every", positive=True
        )
    )


def _url_transport(url: str) -> str:
    # FastMCP and most servers mount legacy SSE at /sse and Streamable HTTP at /mcp.
    return "sse" if urlsplit(url).path.rstrip("/").endswith("/sse") else "http"


def _transports(ctx: _Context, data: dict[str, Any], target: Target) -> tuple[str, ...]:
    if "transports" not in data:
        if isinstance(target.url, str):
            return (_url_transport(target.url),)
        if isinstance(target.url, dict):
            return tuple(t for t in TRANSPORTS if t in target.url)
        return TRANSPORTS
    if "transports" not in ctx.cli_keys and "target.url" in ctx.cli_keys and isinstance(target.url, str):
        # The file's transports were chosen for the file's target; one URL from the command
        # line is one transport.
        return (_url_transport(target.url),)
    value = data["transports"]
    if not isinstance(value, list) or not value:
        ctx.fail("transports", f"expected a non-empty list of {', '.join(TRANSPORTS)}, got {_got(value)}")
    out: list[str] = []
    for i, item in enumerate(value):
        if item not in TRANSPORTS:
            ctx.fail(
                f"transports[{i}]",
                f"expected one of {', '.join(TRANSPORTS)}, got {_got(item)}{_did_you_mean(item, TRANSPORTS)}",
            )
        if item in out:
            ctx.fail("transports", f"{item!r} is listed twice")
        out.append(item)
    if target.url is not None:
        for transport in out:
            if transport == "stdio":
                ctx.fail(
                    "transports",
                    "stdio needs a server to launch, but the target is a URL; "
                    "drop stdio from transports or give target.command",
                )
            if isinstance(target.url, dict) and transport not in target.url:
                ctx.fail(
                    "target.url",
                    f'no URL for transport {transport!r}; add {transport} = "..." or drop it from transports',
                )
    return tuple(out)


def _target(ctx: _Context, table: dict[str, Any]) -> Target:
    _check_keys(ctx, table, _TARGET_KEYS, "target.")
    command: str | None = None
    argv: tuple[str, ...] | None = None
    if "command" in table:
        raw = table["command"]
        if isinstance(raw, list) and raw and all(isinstance(a, str) for a in raw):
            argv = tuple(raw)
            command = shlex.join(raw)
        elif isinstance(raw, str) and raw.strip():
            command = raw
            try:
                argv = tuple(shlex.split(raw))
            except ValueError as exc:
                ctx.fail("target.command", f"cannot split into arguments: {exc}")
        else:
            ctx.fail(
                "target.command", f"expected a command line string or a list of strings, got {_got(raw)}"
            )
        for placeholder in _PLACEHOLDER.findall(" ".join(argv)):
            if placeholder not in _COMMAND_PLACEHOLDERS:
                known = ", ".join(f"{{{p}}}" for p in _COMMAND_PLACEHOLDERS)
                ctx.fail("target.command", f"unknown placeholder {{{placeholder}}}; expected {known}")

    url: str | dict[str, str] | None = None
    if "url" in table:
        raw = table["url"]
        if isinstance(raw, str):
            url = _url(ctx, raw, "target.url")
        elif isinstance(raw, dict) and raw:
            url = {}
            for transport, value in raw.items():
                if transport not in ("sse", "http"):
                    ctx.fail(f"target.url.{transport}", "expected sse or http (stdio has no URL)")
                url[transport] = _url(ctx, value, f"target.url.{transport}")
        else:
            ctx.fail(
                "target.url", f'expected a URL or a table {{ sse = "...", http = "..." }}, got {_got(raw)}'
            )
    if command is not None and url is not None:
        ctx.fail("target.url", "give either target.command or target.url, not both")

    if "reference" in table:
        reference = _bool(ctx, table["reference"], "target.reference")
        if reference and command is not None:
            ctx.fail("target.reference", "reference = true conflicts with target.command; drop one")
        if reference and url is not None:
            ctx.fail("target.reference", "reference = true conflicts with target.url; drop one")
        if not reference and command is None and url is None:
            ctx.fail("target.reference", "reference = false needs target.command or target.url")
    else:
        reference = command is None and url is None
    if not reference:
        for key in _REFERENCE_ONLY:
            if key in table:
                ctx.fail(f"target.{key}", "applies only to the bundled reference server (no command or url)")

    headers: dict[str, str] = {}
    for name, value in _table(ctx, table.get("headers", {}), "target.headers").items():
        key = f"target.headers.{name}"
        if not _HEADER_NAME.fullmatch(name):
            ctx.fail(key, "not a valid HTTP header name")
        headers[name] = _expand_env(ctx, _string(ctx, value, key, empty=True), key)
    env: dict[str, str] = {}
    for name, value in _table(ctx, table.get("env", {}), "target.env").items():
        key = f"target.env.{name}"
        env[name] = _expand_env(ctx, _string(ctx, value, key, empty=True), key)
    transport_names: dict[str, str] = {}
    for name, value in _table(ctx, table.get("transport_names", {}), "target.transport_names").items():
        key = f"target.transport_names.{name}"
        if name not in ("stdio", "sse", "http"):
            ctx.fail(key, "expected stdio, sse or http")
        transport_names[name] = _string(ctx, value, key)
    restart = _bool(ctx, table.get("restart", False), "target.restart")
    if restart and url is not None:
        ctx.fail(
            "target.restart",
            "applies to a launched target (reference or command), not a running server at a URL",
        )

    return Target(
        reference=reference,
        command=command,
        argv=argv,
        url=url,
        headers=headers,
        env=env,
        ready_timeout=_duration(
            ctx, table.get("ready_timeout", DEFAULT_READY_TIMEOUT_S), "target.ready_timeout", positive=True
        ),
        json_response=_bool(ctx, table.get("json_response", False), "target.json_response"),
        stateless=_bool(ctx, table.get("stateless", False), "target.stateless"),
        delay_ms=_number(ctx, table.get("delay_ms", 0.0), "target.delay_ms"),
        transport_names=transport_names,
        restart=restart,
        leak_kb_per_session=_int(ctx, table.get("leak_kb_per_session", 0), "target.leak_kb_per_session"),
    )


def _url(ctx: _Context, value: Any, key: str) -> str:
    text = _string(ctx, value, key)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        ctx.fail(key, f"expected an http:// or https:// URL, got {text!r}")
    return text


def _workload(ctx: _Context, table: dict[str, Any]) -> Workload:
    _check_keys(ctx, table, _WORKLOAD_KEYS, "workload.")
    model: Literal["closed", "open"]
    if "model" in table:
        raw_model = table["model"]
        if raw_model == "closed":
            model = "closed"
        elif raw_model == "open":
            model = "open"
        else:
            ctx.fail(
                "workload.model",
                f'expected "closed" or "open", got {_got(raw_model)}{_did_you_mean(raw_model, ["closed", "open"])}',
            )
    else:
        model = "open" if "rate" in table else "closed"

    stages: list[Stage] = []
    if "stages" in table:
        raw_stages = table["stages"]
        if not isinstance(raw_stages, list) or not raw_stages:
            ctx.fail("workload.stages", f"expected a non-empty array of tables, got {_got(raw_stages)}")
        for i, raw in enumerate(raw_stages):
            stages.append(_stage(ctx, raw, f"workload.stages[{i}]", model))
        if model == "closed" and not any(stage.sessions for stage in stages):
            ctx.fail("workload.stages", "every stage has sessions = 0; nothing would run")
        if model == "open" and not any(stage.rate for stage in stages):
            ctx.fail("workload.stages", "every stage has a rate of 0; nothing would run")
        total = sum(stage.duration for stage in stages)
        if "duration" in table:
            ctx.fail("workload.duration", f"the stages set the duration (together {total:g}s); drop one")
        if "rate" in table:
            ctx.fail("workload.rate", "the stages set the rate; drop workload.rate or the stages")
        if model == "closed" and "sessions" in table:
            ctx.fail("workload.sessions", "the stages set the sessions of a closed model; drop one")

    rate: float | None = None
    if "rate" in table:
        if model == "closed":
            ctx.fail("workload.rate", 'only the open model has a rate, and workload.model is "closed"')
        rate = _rate(ctx, table["rate"], "workload.rate")
    elif model == "open" and not stages:
        ctx.fail(
            "workload.rate", "the open model needs a rate like '200/s' or '300/h' (or stages with rates)"
        )

    requests = _int(ctx, table.get("requests", 0), "workload.requests")
    duration: float | None = None
    if "duration" in table:
        duration = _duration(ctx, table["duration"], "workload.duration", positive=True)
    elif not stages and requests == 0:
        duration = DEFAULT_DURATION_S

    think_time = _duration(ctx, table.get("think_time", 0.0), "workload.think_time")
    if think_time and model == "open":
        ctx.fail(
            "workload.think_time", "only the closed model pauses between calls; the open model has a rate"
        )

    sessions_default = max((s.sessions or 0 for s in stages), default=0) if model == "closed" else 0
    return Workload(
        model=model,
        sessions=_int(
            ctx, table.get("sessions", sessions_default or DEFAULT_SESSIONS), "workload.sessions", minimum=1
        ),
        duration=duration,
        requests=requests,
        rate=rate,
        think_time=think_time,
        warmup=_duration(ctx, table.get("warmup", DEFAULT_WARMUP_S), "workload.warmup"),
        churn=_int(ctx, table.get("churn", 0), "workload.churn"),
        max_in_flight=_int(ctx, table.get("max_in_flight", 1), "workload.max_in_flight"),
        get_stream=_bool(ctx, table.get("get_stream", True), "workload.get_stream"),
        request_timeout=_duration(
            ctx,
            table.get("request_timeout", DEFAULT_REQUEST_TIMEOUT_S),
            "workload.request_timeout",
            positive=True,
        ),
        connect_timeout=_duration(
            ctx,
            table.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S),
            "workload.connect_timeout",
            positive=True,
        ),
        stages=tuple(stages),
        close_sessions=_close_sessions(ctx, table.get("close_sessions", "delete")),
    )


def _close_sessions(ctx: _Context, value: Any) -> Literal["delete", "abandon"]:
    if value not in _CLOSE_SESSIONS:
        ctx.fail(
            "workload.close_sessions",
            f'expected "delete" or "abandon", got {_got(value)}{_did_you_mean(value, _CLOSE_SESSIONS)}',
        )
    closing: Literal["delete", "abandon"] = "delete" if value == "delete" else "abandon"
    return closing


def _stage(ctx: _Context, raw: Any, key: str, model: str) -> Stage:
    table = _table(ctx, raw, key)
    _check_keys(ctx, table, _STAGE_KEYS, f"{key}.")
    if "duration" not in table:
        ctx.fail(f"{key}.duration", "missing; every stage needs a duration like '10s'")
    duration = _duration(ctx, table["duration"], f"{key}.duration", positive=True)
    if model == "open":
        if "sessions" in table:
            ctx.fail(f"{key}.sessions", "open-model stages set a rate, not sessions")
        if "rate" not in table:
            ctx.fail(f"{key}.rate", "missing; open-model stages need a rate like '200/s'")
        return Stage(duration, rate=_rate(ctx, table["rate"], f"{key}.rate", positive=False))
    if "rate" in table:
        ctx.fail(f"{key}.rate", 'closed-model stages set sessions, not a rate (use model = "open")')
    if "sessions" not in table:
        ctx.fail(f"{key}.sessions", "missing; closed-model stages need a number of sessions")
    return Stage(duration, sessions=_int(ctx, table["sessions"], f"{key}.sessions"))


def _ops(ctx: _Context, raw: Any) -> tuple[Op, ...]:
    if isinstance(raw, dict):
        ctx.fail("ops", "expected an array of tables ([[ops]]), got a table ([ops])")
    if not isinstance(raw, list) or not raw:
        ctx.fail("ops", f"expected a non-empty array of tables ([[ops]]), got {_got(raw)}")
    ops: list[Op] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        op = _op(ctx, item, f"ops[{i}]")
        if op.name in seen:
            ctx.fail(
                f"ops[{i}].name",
                f"{op.name!r} is also the name of ops[{seen[op.name]}]; give each op a distinct name",
            )
        seen[op.name] = i
        ops.append(op)
    return tuple(ops)


def _op(ctx: _Context, raw: Any, where: str) -> Op:
    table = _table(ctx, raw, where)
    _check_keys(ctx, table, _OP_KEYS, f"{where}.")
    if "method" in table:
        method = table["method"]
        if method not in METHODS:
            hint = _did_you_mean(method, METHODS)
            ctx.fail(f"{where}.method", f"expected one of {', '.join(METHODS)}, got {_got(method)}{hint}")
    else:
        # `tool = "echo"` alone says tools/call; no need to repeat it.
        implied = [m for m, k in _METHOD_REQUIRES.items() if k in table]
        if len(implied) != 1:
            ctx.fail(f"{where}.method", f"missing; expected one of {', '.join(METHODS)}")
        method = implied[0]
    allowed = _METHOD_FIELDS[method]
    for key in ("tool", "uri", "prompt", "arguments", "progress", "expect_progress"):
        if key in table and key not in allowed:
            ctx.fail(f"{where}.{key}", f"not used by {method}")
    required = _METHOD_REQUIRES.get(method)
    if required is not None and required not in table:
        ctx.fail(f"{where}.{required}", f"missing; {method} needs a {required}")

    tool = _string(ctx, table["tool"], f"{where}.tool") if "tool" in table else None
    uri = _string(ctx, table["uri"], f"{where}.uri") if "uri" in table else None
    prompt = _string(ctx, table["prompt"], f"{where}.prompt") if "prompt" in table else None
    arguments: dict[str, Any] | None = None
    if "arguments" in table:
        arguments = _table(ctx, table["arguments"], f"{where}.arguments")
        _jsonable(ctx, arguments, f"{where}.arguments")
        if method == "prompts/get":
            for name, value in arguments.items():
                _string(ctx, value, f"{where}.arguments.{name}", empty=True)

    if "name" in table:
        name = _string(ctx, table["name"], f"{where}.name")
    elif tool is not None:
        name = tool
    elif uri is not None:
        name = "read:" + (uri.split(":", 1)[0] if ":" in uri else uri)
    elif prompt is not None:
        name = prompt
    else:
        name = method

    weight = _number(ctx, table.get("weight", 1), f"{where}.weight", positive=True)
    progress = _bool(ctx, table.get("progress", False), f"{where}.progress")
    expect_progress = _int(ctx, table.get("expect_progress", 0), f"{where}.expect_progress")
    if expect_progress and not progress:
        ctx.fail(f"{where}.expect_progress", "needs progress = true (no progress token, no notifications)")
    expect = _expect(ctx, table.get("expect", {}), f"{where}.expect", method, arguments, uri)
    return Op(
        name=name,
        method=method,
        tool=tool,
        uri=uri,
        prompt=prompt,
        arguments=arguments,
        weight=weight,
        progress=progress,
        expect_progress=expect_progress,
        expect=expect,
    )


def _expect(
    ctx: _Context, raw: Any, where: str, method: str, arguments: dict[str, Any] | None, uri: str | None
) -> Expect:
    table = _table(ctx, raw, where)
    _check_keys(ctx, table, _EXPECT_KEYS, f"{where}.")
    kinds = [k for k in _EXPECT_KINDS if k in table and table[k] is not False]
    if len(kinds) > 1:
        ctx.fail(
            f"{where}.{kinds[1]}",
            f"give at most one of {', '.join(_EXPECT_KINDS)}; {kinds[0]} is already set",
        )
    if method in ("tools/list", "ping") and kinds:
        ctx.fail(f"{where}.{kinds[0]}", f"{method} answers carry no content to check")
    fields: dict[str, Any] = {}
    if "is_error" in table:
        fields["is_error"] = _bool(ctx, table["is_error"], f"{where}.is_error")
        if fields["is_error"] and method != "tools/call":
            ctx.fail(f"{where}.is_error", "only tools/call results carry isError")
    for kind in _EXPECT_KINDS:
        if kind not in table:
            continue
        key = f"{where}.{kind}"
        value = table[kind]
        if kind == "text":
            fields[kind] = _string(ctx, value, key, empty=True)
        elif kind == "regex":
            pattern = _string(ctx, value, key, empty=True)
            try:
                fields[kind] = re.compile(pattern)
            except re.error as exc:
                ctx.fail(key, f"invalid regular expression {pattern!r}: {exc}")
        elif kind == "length":
            fields[kind] = _int(ctx, value, key)
        elif kind == "sha256":
            if not isinstance(value, str) or not _SHA256.fullmatch(value):
                ctx.fail(key, f"expected 64 hex digits, got {_got(value)}")
            fields[kind] = value.lower()
        elif kind == "json":
            fields[kind] = _table(ctx, value, key)
            _jsonable(ctx, value, key)
        else:
            fields[kind] = _bool(ctx, value, key)
    if fields.get("blob"):
        _check_blob(ctx, f"{where}.blob", method, arguments, uri)
    return Expect(**fields)


def _check_blob(
    ctx: _Context, key: str, method: str, arguments: dict[str, Any] | None, uri: str | None
) -> None:
    """The checker derives size and seed from the request; make sure it will be able to."""
    if method == "resources/read":
        assert uri is not None
        if not _BLOB_URI.fullmatch(uri.replace("{seed}", "0")):
            ctx.fail(key, f"needs a uri like 'blob://65536/{{seed}}' (size, then a seed), got {uri!r}")
        return
    if method != "tools/call":
        ctx.fail(key, "applies to tools/call (arguments n_bytes, seed) or resources/read (uri blob://N/SEED)")
    args = arguments or {}
    n_bytes = args.get("n_bytes")
    if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes < 0:
        ctx.fail(
            key,
            f"needs arguments.n_bytes, a whole number of bytes; got {_got(n_bytes) if n_bytes is not None else 'none'}",
        )
    seed = args.get("seed", 0)
    if not (seed == "{seed}" or (isinstance(seed, int) and not isinstance(seed, bool))):
        ctx.fail(key, f'needs arguments.seed to be a whole number or "{{seed}}"; got {_got(seed)}')


def _thresholds(ctx: _Context, raw: Any, ops: tuple[Op, ...]) -> tuple[Threshold, ...]:
    if not isinstance(raw, list):
        ctx.fail("thresholds", f'expected an array of strings like "p99 < 500ms", got {_got(raw)}')
    names = [op.name for op in ops]
    out: list[Threshold] = []
    for i, expr in enumerate(raw):
        key = f"thresholds[{i}]"
        if not isinstance(expr, str):
            ctx.fail(key, f'expected a string like "p99 < 500ms", got {_got(expr)}')
        try:
            threshold = parse_threshold(expr)
        except ValueError as exc:
            ctx.fail(key, str(exc))
        if threshold.transport is not None and threshold.transport not in TRANSPORTS:
            hint = (
                _did_you_mean(threshold.transport, TRANSPORTS)
                or f" (expected one of {', '.join(TRANSPORTS)})"
            )
            ctx.fail(key, f"unknown transport {threshold.transport!r} in the scope of {expr!r}{hint}")
        if threshold.op_name is not None and threshold.op_name not in names:
            hint = _did_you_mean(threshold.op_name, names) or f" (ops: {', '.join(names)})"
            ctx.fail(key, f"no op named {threshold.op_name!r} in the scope of {expr!r}{hint}")
        out.append(threshold)
    return tuple(out)
