"""The comparison as JSON (schema ``mcp-loadtest/compare/1``), for scripts."""

from __future__ import annotations

from pathlib import Path

import orjson

from loadtest.analysis.compare.verdicts import Comparison

__all__ = ["render_json", "write_json"]


def render_json(comparison: Comparison) -> bytes:
    """Indented, keys in a fixed order, numbers to six significant digits."""
    return orjson.dumps(comparison.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def write_json(comparison: Comparison, path: Path) -> None:
    path.write_bytes(render_json(comparison))
