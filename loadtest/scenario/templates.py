"""Request templates: ``{nonce}`` and ``{seed}`` in the strings of a request or an expectation.

Placeholders are decided once at load time, so that rendering a request on the hot path is a few
``str.replace`` calls on just the strings that need them, and nothing at all otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "ExactSeed",
    "RegexTemplate",
    "Render",
    "SeedValue",
    "compile_str",
    "compile_value",
    "constant",
    "seed_as_int",
]

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


#: What any nonce and any seed look like (``nonce-<run token>-<n>``, a whole number): the
#: placeholders' stand-ins in a regex compiled once. Only speed depends on them: a match is
#: verified against the request's own nonce and seed, and the exact pattern decides otherwise.
_ANY = {"nonce": "nonce-[0-9a-z]+-[0-9]+", "seed": "[0-9]+"}
_GROUP = {"nonce": "_loadtest_nonce", "seed": "_loadtest_seed"}
#: Patterns where inserted groups could change the meaning (numbered backreferences,
#: conditionals, an escaped brace): always compiled per request.
_NOT_GENERIC = re.compile(r"\\[1-9]|\(\?\(|\\\{")


class RegexTemplate:
    """An expected regex holding ``{nonce}``/``{seed}``, matched per request without a compile.

    Compiling the filled-in pattern for every request costs ~100 us on the load generator's hot
    path. Instead the placeholders become groups matching any nonce or seed, compiled once; a
    match whose groups hold this request's nonce and seed is a match of the filled-in pattern
    (which is that pattern with those groups fixed). Only when no such match is found is the
    filled-in pattern compiled and searched, so the verdict is always the exact pattern's.
    """

    __slots__ = ("_generic", "flags", "pattern")

    def __init__(self, regex: re.Pattern[str]) -> None:
        self.pattern = regex.pattern
        self.flags = regex.flags
        self._generic = _generic(self.pattern, self.flags)

    def exact(self, nonce: str, seed: int) -> re.Pattern[str]:
        """The pattern filled in for one request (the nonce escaped, so it matches only itself)."""
        filled = self.pattern.replace("{nonce}", re.escape(nonce)).replace("{seed}", str(seed))
        return re.compile(filled, self.flags)

    def search(self, text: str, nonce: str, seed: int) -> bool:
        """Whether the pattern filled in for this request matches somewhere in ``text``."""
        if self._generic is not None:
            wanted = {_GROUP["nonce"]: nonce, _GROUP["seed"]: str(seed)}
            for match in self._generic.finditer(text):
                if all(value == wanted[name] for name, value in match.groupdict().items() if name in wanted):
                    return True
        return self.exact(nonce, seed).search(text) is not None


def _generic(pattern: str, flags: int) -> re.Pattern[str] | None:
    if _NOT_GENERIC.search(pattern):
        return None
    seen: set[str] = set()

    def group(match: re.Match[str]) -> str:
        name = _GROUP[match.group(1)]
        if name in seen:
            return f"(?P={name})"
        seen.add(name)
        return f"(?P<{name}>{_ANY[match.group(1)]})"

    try:
        return re.compile(re.sub(r"\{(nonce|seed)\}", group, pattern), flags)
    except re.error:
        return None
