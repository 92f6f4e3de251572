"""Loading a scenario: read the TOML file, apply command-line overrides, validate, build.

:func:`load_scenario` validates everything up front: a mistake is one :class:`UsageError` line
naming the file and the key (``scenarios/x.toml: workload.rate: expected a rate like '200/s'
...``), never a traceback half-way through a run.

Header and ``env`` values may use ``${VAR}`` (or ``${VAR:-default}``), expanded from the
environment at load time; they are secrets, so :meth:`Scenario.to_dict` redacts them.
"""

from __future__ import annotations

import importlib.resources
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadtest.core.errors import UsageError
from loadtest.core.names import TRANSPORTS
from loadtest.scenario.fields import (
    BUNDLED_DEFAULT,
    FROM_COMMAND_LINE,
    TOP_KEYS,
    _check_keys,
    _Context,
    _got,
    _string,
    _table,
)
from loadtest.scenario.model import Scenario
from loadtest.scenario.validate import (
    _REFERENCE_ONLY,
    validate_health,
    validate_soak,
    validate_target,
    validate_thresholds,
    validate_transports,
    validate_workload,
)
from loadtest.scenario.validate_ops import validate_ops

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["load_scenario", "scenario_from_data"]

_TOML_WHERE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")


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
        if key.split(".")[0] not in TOP_KEYS:
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
    _check_keys(ctx, data, TOP_KEYS, "")
    name = _string(ctx, data.get("name", stem), "name")
    description = _string(ctx, data.get("description", ""), "description", empty=True)
    target = validate_target(ctx, _table(ctx, data.get("target", {}), "target"))
    transports = validate_transports(ctx, data, target)
    workload = validate_workload(ctx, _table(ctx, data.get("workload", {}), "workload"))
    if "ops" in data:
        ops = validate_ops(ctx, data["ops"])
    elif target.reference:
        # A scenario that only tunes the workload against the reference server gets the
        # default mix rather than an error.
        bundled = _read_toml(_read_bundled("default.toml"), BUNDLED_DEFAULT)
        ops = validate_ops(_Context(BUNDLED_DEFAULT, set()), bundled["ops"])
    else:
        ctx.fail("ops", 'no operations; add at least one [[ops]] table (e.g. method = "ping")')
    thresholds = validate_thresholds(ctx, data.get("thresholds", []), ops)
    health = validate_health(ctx, _table(ctx, data.get("health", {}), "health"))
    soak = validate_soak(ctx, _table(ctx, data["soak"], "soak")) if "soak" in data else None
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
