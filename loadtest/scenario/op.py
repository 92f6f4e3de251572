"""The typed model of one kind of call: its request template and what a right answer looks like."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from loadtest.scenario.templates import (
    ExactSeed,
    RegexTemplate,
    Render,
    SeedValue,
    compile_str,
    compile_value,
    constant,
    seed_as_int,
)

__all__ = ["EXPECT_KINDS", "LIST_KEYS", "METHODS", "TEXT_METHODS", "Expect", "Op"]

METHODS: tuple[str, ...] = (
    "tools/call",
    "resources/read",
    "prompts/get",
    "tools/list",
    "prompts/list",
    "resources/list",
    "ping",
)
#: The methods whose answers carry text (content, contents, messages) to check.
TEXT_METHODS = ("tools/call", "resources/read", "prompts/get")
#: The list each listing method answers with: also its expectation key for names present.
LIST_KEYS = {"tools/list": "tools", "prompts/list": "prompts", "resources/list": "resources"}
#: The content checks of an expectation; at most one is set.
EXPECT_KINDS = ("text", "regex", "length", "sha256", "json", "blob", "consistent")


@dataclass(frozen=True, slots=True)
class Expect:
    """What a right answer looks like. At most one of the content checks is set.

    A listing (``tools/list``, ``prompts/list``, ``resources/list``) may also say how many
    items its list has (``min_items``, ``max_items``) and which names must be in it
    (``names``, given in the scenario as ``tools``, ``prompts`` or ``resources``).
    """

    text: str | None = None
    regex: re.Pattern[str] | None = None
    length: int | None = None
    sha256: str | None = None
    json: dict[str, Any] | None = None
    blob: bool = False
    consistent: bool = False
    is_error: bool = False
    min_items: int | None = None
    max_items: int | None = None
    #: Names (or, for resources, names or URIs) that must be in the listing.
    names: tuple[str, ...] | None = None

    @property
    def kind(self) -> str | None:
        """Which content check is set (``"text"``, ``"blob"``, ...), or None."""
        for kind in EXPECT_KINDS:
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
        # Only when set: the hash of every scenario without them stays what it was.
        if self.min_items is not None:
            out["min_items"] = self.min_items
        if self.max_items is not None:
            out["max_items"] = self.max_items
        if self.names is not None:
            out["names"] = list(self.names)
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Op:
    """One kind of call in the weighted mix.

    :meth:`render` builds the request's ``params``; strings in ``arguments`` and ``uri`` may hold
    ``{nonce}`` and ``{seed}``, and an argument that is exactly ``"{seed}"`` becomes the int.
    The expectations that hold text (``text``, ``regex``, ``json``) are filled the same way,
    per request: see :meth:`expected_text`, :meth:`expected_regex`, :meth:`expected_json`.
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
    #: Is another call's nonce in an answer proof of misrouting? None: only when this op's own
    #: request carries ``{nonce}`` (see :attr:`checks_foreign_nonces`).
    check_foreign_nonces: bool | None = None
    _render: Render = field(init=False, repr=False, compare=False)
    _expected_text: Render | None = field(init=False, repr=False, compare=False)
    _expected_regex: RegexTemplate | None = field(init=False, repr=False, compare=False)
    _expected_json: Render | None = field(init=False, repr=False, compare=False)
    _expected_names: Render | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_render", self._compile_params())
        expect = self.expect
        text: Render | None = None
        if expect.text is not None:
            text = compile_str(expect.text) or constant(expect.text)
        object.__setattr__(self, "_expected_text", text)
        regex: RegexTemplate | None = None
        if expect.regex is not None and (
            "{nonce}" in expect.regex.pattern or "{seed}" in expect.regex.pattern
        ):
            regex = RegexTemplate(expect.regex)
        object.__setattr__(self, "_expected_regex", regex)
        json: Render | None = None
        if expect.json is not None:
            # An exact "{seed}" matches the number or its text: a server may echo either.
            json = compile_value(expect.json, exact_seed=SeedValue) or constant(expect.json)
        object.__setattr__(self, "_expected_json", json)
        names: Render | None = None
        if expect.names is not None:
            names = compile_value(list(expect.names)) or constant(list(expect.names))
        object.__setattr__(self, "_expected_names", names)

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
                self.check_foreign_nonces,
            ),
        )

    def _compile_params(self) -> Render:
        if self.method == "tools/call":
            params: dict[str, Any] = {"name": self.tool, "arguments": dict(self.arguments or {})}
            exact_seed: ExactSeed | None = seed_as_int
        elif self.method == "resources/read":
            params = {"uri": self.uri}
            exact_seed = None
        elif self.method == "prompts/get":
            params = {"name": self.prompt}
            if self.arguments is not None:
                params["arguments"] = dict(self.arguments)
            # Prompt arguments are strings by the MCP schema, so "{seed}" stays a string.
            exact_seed = None
        else:
            return constant(None)
        return compile_value(params, exact_seed=exact_seed) or constant(params)

    @property
    def checks_foreign_nonces(self) -> bool:
        """Whether an answer carrying another call's nonce (and not ours) counts as misrouted.

        By default only when the op's own request carries ``{nonce}``: then a right answer is
        about this call, and another call's nonce in it proves cross-wiring. An op without one
        (a search, a listing) may legitimately return what other calls stored, nonces included,
        on a server with shared state. The op key ``check_foreign_nonces`` decides explicitly.
        """
        if self.check_foreign_nonces is not None:
            return self.check_foreign_nonces
        return _has_nonce(self.arguments) or _has_nonce(self.uri)

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

    def expected_regex(self, nonce: str, seed: int) -> re.Pattern[str] | None:
        """``expect.regex`` with the request's nonce (escaped) and seed filled in, or None."""
        if self._expected_regex is None:
            return self.expect.regex
        return self._expected_regex.exact(nonce, seed)

    def regex_matches(self, text: str, nonce: str, seed: int) -> bool:
        """Whether ``expect.regex``, filled in for this request, matches somewhere in ``text``."""
        if self._expected_regex is not None:
            return self._expected_regex.search(text, nonce, seed)
        return self.expect.regex is not None and self.expect.regex.search(text) is not None

    def expected_json(self, nonce: str, seed: int) -> Any:
        """``expect.json`` with the request's ``{nonce}``/``{seed}`` filled in, or None."""
        if self._expected_json is None:
            return None
        return self._expected_json(nonce, seed)

    def expected_names(self, nonce: str, seed: int) -> list[str] | None:
        """The names a listing must hold, placeholders filled in, or None."""
        if self._expected_names is None:
            return None
        names: list[str] = self._expected_names(nonce, seed)
        return names

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
        # Only when given: the hash of every scenario without it stays what it was.
        if self.check_foreign_nonces is not None:
            out["check_foreign_nonces"] = self.check_foreign_nonces
        return out


def _has_nonce(value: Any) -> bool:
    if isinstance(value, str):
        return "{nonce}" in value
    if isinstance(value, dict):
        return any(_has_nonce(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nonce(v) for v in value)
    return False
