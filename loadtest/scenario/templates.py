"""Request templates: ``{nonce}`` and ``{seed}`` in the strings of a request or an expectation.

Placeholders are decided once at load time, so that rendering a request on the hot path is a few
``str.replace`` calls on just the strings that need them, and nothing at all otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Render", "compile_str", "compile_value", "constant"]

#: Builds a value for one request from its nonce and seed.
Render = Callable[[str, int], Any]


def compile_value(value: Any, *, seed_as_int: bool) -> Render | None:
    """A function building ``value`` with ``{nonce}``/``{seed}`` filled in; None if it has none."""
    if isinstance(value, str):
        return compile_str(value, seed_as_int=seed_as_int)
    if isinstance(value, dict):
        parts = [(k, r) for k, v in value.items() if (r := compile_value(v, seed_as_int=seed_as_int))]
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
        items = [(i, r) for i, v in enumerate(value) if (r := compile_value(v, seed_as_int=seed_as_int))]
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


def compile_str(text: str, *, seed_as_int: bool) -> Render | None:
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


def constant(value: Any) -> Render:
    return lambda nonce, seed: value
