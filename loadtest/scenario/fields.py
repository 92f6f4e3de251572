"""Generic validators for scenario values: each failure is one line naming the file and key."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from loadtest.core.errors import UsageError
from loadtest.core.units import parse_duration, parse_rate

BUNDLED_DEFAULT = "<bundled default>"
FROM_COMMAND_LINE = "(from the command line)"
#: The top-level keys of a scenario file.
TOP_KEYS = ("name", "description", "transports", "target", "workload", "ops", "thresholds", "health", "soak")
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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
            if where and key in TOP_KEYS:
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
