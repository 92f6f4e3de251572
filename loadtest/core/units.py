"""Durations, rates and latencies as people write and read them.

Parsing raises :class:`ValueError` with a short reason; the scenario loader turns that into a
:class:`~loadtest.core.errors.UsageError` naming the file and key. Formatting is the inverse where it
matters: every string :func:`format_duration` produces parses back with :func:`parse_duration`.
"""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "format_latency_us", "parse_duration", "parse_rate"]

_DURATION_UNITS = {
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})\s*(us|µs|ms|s|m|h|d)")
_DURATION_FULL = re.compile(rf"(?:{_NUMBER}\s*(?:us|µs|ms|s|m|h|d)\s*)+")
_BARE_NUMBER = re.compile(rf"[+]?{_NUMBER}(?:[eE][+-]?\d+)?")

_RATE_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


def _number(value: int | float, what: str) -> float:
    # bool is an int in Python, but `duration = true` is a mistake, not one second.
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, got {str(value).lower()}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"expected a finite {what}, got {value}")
    if number < 0:
        raise ValueError(f"expected a non-negative {what}, got {value}")
    return number


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``: ``"250ms"``, ``"30s"``, ``"5m"``, ``"1h30m"``, ``"500us"``; numbers are seconds."""
    if isinstance(text, (int, float)):
        return _number(text, "duration")
    if not isinstance(text, str):
        raise ValueError(f"expected a duration like '30s' or '5m', got {type(text).__name__}")
    s = text.strip()
    if not s:
        raise ValueError("expected a duration like '30s' or '5m', got an empty string")
    if _BARE_NUMBER.fullmatch(s):
        return _number(float(s), "duration")
    if not _DURATION_FULL.fullmatch(s):
        raise ValueError(f"expected a duration like '250ms', '30s', '5m' or '1h30m', got {text!r}")
    return sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(s))


def parse_rate(text: str | int | float) -> float:
    """Calls per second in ``text``: ``"200/s"``, ``"20/m"``, ``"300/h"``, ``"1/250ms"``; numbers are per second."""
    if isinstance(text, (int, float)):
        return _number(text, "rate")
    if not isinstance(text, str):
        raise ValueError(f"expected a rate like '200/s' or '300/h', got {type(text).__name__}")
    s = text.strip()
    count_text, slash, per = s.partition("/")
    count_text, per = count_text.strip(), per.strip()
    if not _BARE_NUMBER.fullmatch(count_text) or (slash and not per):
        raise ValueError(f"expected a rate like '200/s' or '300/h', got {text!r}")
    count = _number(float(count_text), "rate")
    if not slash:
        return count
    if per in _RATE_UNITS:
        return count / _RATE_UNITS[per]
    try:
        window = parse_duration(per)
    except ValueError:
        raise ValueError(f"expected a rate like '200/s' or '300/h', got {text!r}") from None
    if window <= 0:
        raise ValueError(f"expected a rate over a positive time, got {text!r}")
    return count / window


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


def format_duration(s: float) -> str:
    """A short human form of ``s`` seconds: ``"350ms"``, ``"1.2s"``, ``"5m30s"``, ``"2h05m"``."""
    if not math.isfinite(s):
        return str(s)
    if s < 0:
        return "-" + format_duration(-s)
    if round(s * 1e6) < 1000:
        return f"{round(s * 1e6)}us"
    ms = s * 1e3
    if round(ms, 1) < 10:
        return _trim(f"{ms:.1f}") + "ms"
    if round(ms) < 1000:
        return f"{round(ms)}ms"
    if round(s, 1) < 60:
        return _trim(f"{s:.1f}") + "s"
    if round(s) < 3600:
        minutes, seconds = divmod(round(s), 60)
        return f"{minutes}m{seconds:02d}s" if seconds else f"{minutes}m"
    hours, minutes = divmod(round(s / 60), 60)
    return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"


def _three_digits(value: float) -> str | None:
    """``value`` with three significant digits, or None when it needs a bigger unit."""
    for decimals, limit in ((2, 10), (1, 100), (0, 1000)):
        if round(value, decimals) < limit:
            return f"{value:.{decimals}f}"
    return None


def format_latency_us(us: float) -> str:
    """A latency in microseconds, to three significant digits: ``"812us"``, ``"12.3ms"``, ``"1.20s"``."""
    if not math.isfinite(us):
        return str(us)
    if us < 0:
        return "-" + format_latency_us(-us)
    if round(us) < 1000:
        return f"{round(us)}us"
    if (ms := _three_digits(us / 1e3)) is not None:
        return ms + "ms"
    seconds = us / 1e6
    return (_three_digits(seconds) or f"{seconds:.0f}") + "s"
