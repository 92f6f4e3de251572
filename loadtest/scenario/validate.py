"""Validating the sections of a scenario file: target, transports, workload, health, soak, thresholds."""

from __future__ import annotations

import re
import shlex
from typing import Any, Literal
from urllib.parse import urlsplit

from loadtest.core.names import DEFAULT_REQUEST_TIMEOUT_S, TRANSPORTS
from loadtest.protocol.versions import parse_protocol
from loadtest.scenario.fields import (
    _bool,
    _check_keys,
    _Context,
    _did_you_mean,
    _duration,
    _expand_env,
    _got,
    _int,
    _number,
    _rate,
    _string,
    _table,
)
from loadtest.scenario.model import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_DURATION_S,
    DEFAULT_READY_TIMEOUT_S,
    DEFAULT_SAMPLE_EVERY_S,
    DEFAULT_SESSIONS,
    DEFAULT_STATUS_EVERY_S,
    DEFAULT_WARMUP_S,
    Health,
    Op,
    Soak,
    Stage,
    Target,
    Workload,
)
from loadtest.scenario.thresholds import Threshold, parse_threshold

_COMMAND_PLACEHOLDERS = ("transport", "port", "python")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
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
    "protocol",
)
_CLOSE_SESSIONS = ("delete", "abandon")
_HEALTH_KEYS = ("sample_every", "warmup", "idle", "hang_after")
_SOAK_KEYS = ("status_every",)
_STAGE_KEYS = ("duration", "rate", "sessions")


def validate_health(ctx: _Context, table: dict[str, Any]) -> Health:
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


def validate_soak(ctx: _Context, table: dict[str, Any]) -> Soak:
    _check_keys(ctx, table, _SOAK_KEYS, "soak.")
    return Soak(
        status_every=_duration(
            ctx, table.get("status_every", DEFAULT_STATUS_EVERY_S), "soak.status_every", positive=True
        )
    )


def _url_transport(url: str) -> str:
    # FastMCP and most servers mount legacy SSE at /sse and Streamable HTTP at /mcp.
    return "sse" if urlsplit(url).path.rstrip("/").endswith("/sse") else "http"


def validate_transports(ctx: _Context, data: dict[str, Any], target: Target) -> tuple[str, ...]:
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


def validate_target(ctx: _Context, table: dict[str, Any]) -> Target:
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


def validate_workload(ctx: _Context, table: dict[str, Any]) -> Workload:
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
        protocol=_protocol(ctx, table.get("protocol", "auto")),
    )


def _protocol(ctx: _Context, value: Any) -> str:
    try:
        return parse_protocol(value if isinstance(value, str) else repr(value))
    except ValueError as exc:
        ctx.fail("workload.protocol", str(exc))


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


def validate_thresholds(ctx: _Context, raw: Any, ops: tuple[Op, ...]) -> tuple[Threshold, ...]:
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
