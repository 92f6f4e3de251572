"""Request templates: ``{nonce}`` and ``{seed}`` in the strings of a request or an expectation.

Placeholders are decided once at load time, so that rendering a request on the hot path is a few
``str.replace`` calls on just the strings that need them, and nothing at all otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ExactSeed", "Render", "SeedValue", "compile_str", "compile_value", "constant", "seed_as_int"]

#: Builds a value for one request from its nonce and seed.
Render = Callable[[str, int], Any]
#: What a string that is exactly ``"{seed}"`` becomes; None: the seed's decimal text.
ExactSeed = Callable[[int], Any]


def seed_as_int(seed: int) -> int:
    """A tool argument that is exactly ``"{seed}"`` is the number itself."""
    return seed


class SeedValue:
    """An expected value that is exactly ``"{seed}"``: equal to the seed as a number or as text.

    A server may echo a seed back as a JSON number (structured content) or inside text; the
    scenario cannot say which with one placeholder, so either is right.
    """

    __slots__ = ("seed",)

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __eq__(self, other: object) -> bool:
        if isinstance(other, bool):
            return False
        return other == self.seed or other == str(self.seed)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.seed)


def compile_value(value: Any, *, exact_seed: ExactSeed | None = None) -> Render | None:
    """A function building ``value`` with ``{nonce}``/``{seed}`` filled in; None if it has none.

    Strings anywhere in nested tables and arrays are filled; a string that is exactly
    ``"{seed}"`` becomes ``exact_seed(seed)`` when that is given.
    """
    if isinstance(value, str):
        return compile_str(value, exact_seed=exact_seed)
    if isinstance(value, dict):
        parts = [(k, r) for k, v in value.items() if (r := compile_value(v, exact_seed=exact_seed))]
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
        items = [(i, r) for i, v in enumerate(value) if (r := compile_value(v, exact_seed=exact_seed))]
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


def compile_str(text: str, *, exact_seed: ExactSeed | None = None) -> Render | None:
    """A function filling ``{nonce}``/``{seed}`` into ``text``; None if it has neither."""
    if text == "{seed}" and exact_seed is not None:
        if exact_seed is seed_as_int:
            return lambda nonce, seed: seed  # the hot path's common case: no extra call
        return lambda nonce, seed: exact_seed(seed)
    has_nonce, has_seed = "{nonce}" in text, "{seed}" in text
    if has_nonce and has_seed:
        return lambda nonce, seed: text.replace("{nonce}", nonce).replace("{seed}", str(seed))
    if has_nonce:
        return lambda nonce, seed: text.replace("{nonce}", nonce)
    if has_seed:
        return lambda nonce, seed: text.replace("{seed}", str(seed))
    return None


def constant(value: Any) -> Render:
    """A renderer that always gives ``value``."""
    return lambda nonce, seed: value
