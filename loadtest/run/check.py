"""Is an answer right? Classify every outcome as ok, a loud error, or a silent failure.

Loud: what a normal client would notice (transport error, JSON-RPC error, ``isError``).
Silent: it looked fine to the transport but was wrong (README, "Silent failures"): ``lost``,
``truncated``, ``corrupt``, ``misrouted``, ``duplicate``, ``malformed``, ``notification_lost``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from loadtest.protocol.session import Outcome
from loadtest.run.payload import check_blob
from loadtest.scenario import LIST_KEYS, Op

#: Nonces look like ``nonce-<run token>-<n>``; finding someone else's in an answer proves misrouting.
NONCE_RE = re.compile(r"nonce-[0-9a-f]{6}-[0-9]+")
_BLOB_URI = re.compile(r"^blob://(\d+)(?:/(\d+))?$")


@dataclass(frozen=True, slots=True)
class Verdict:
    error: str | None = None
    silent: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and self.silent is None


OK = Verdict()


class Checker:
    """Checks the answers to one op; keeps the reference answer for ``consistent`` mode."""

    __slots__ = ("_foreign", "_reference", "op")

    def __init__(self, op: Op) -> None:
        self.op = op
        self._reference: str | None = None
        #: Decided once per op: may its answers carry other calls' nonces?
        self._foreign = op.checks_foreign_nonces

    def check(self, outcome: Outcome, params: dict[str, Any] | None, nonce: str, seed: int) -> Verdict:
        error = outcome.error
        if error is not None:
            return (
                Verdict(silent=error.kind, detail=error.detail)
                if error.silent
                else Verdict(error=error.kind, detail=error.detail)
            )
        op = self.op
        result = outcome.result
        if not isinstance(result, dict):
            return Verdict(silent="malformed", detail=f"result is {type(result).__name__}, not an object")
        text, problem = _text_of(op.method, result)
        if problem:
            return Verdict(silent="malformed", detail=problem)
        expect = op.expect
        is_error = result.get("isError") is True
        if is_error != bool(expect.is_error):
            if is_error:
                return Verdict(error="is_error", detail=f"isError: true: {_short(text)}")
            return Verdict(silent="corrupt", detail="expected isError: true, got a normal result")
        if outcome.progress < op.expect_progress:
            return Verdict(
                silent="notification_lost",
                detail=f"{outcome.progress} of {op.expect_progress} progress notifications arrived",
            )
        if text is None:
            return self._result_expectation(result, nonce, seed)
        verdict = self._expectation(text, result, params, nonce, seed)
        if (
            verdict is OK
            and self._foreign
            and nonce not in text
            and (foreign := NONCE_RE.search(text)) is not None
        ):
            return Verdict(
                silent="misrouted", detail=f"answer carries another request's nonce {foreign.group()}"
            )
        return verdict

    def _expectation(
        self, text: str, result: dict[str, Any], params: dict[str, Any] | None, nonce: str, seed: int
    ) -> Verdict:
        op = self.op
        expect = op.expect
        if expect.blob:
            n, blob_seed = _blob_request(op.method, params)
            if n is None:
                return OK
            blob = check_blob(text, n, blob_seed)
            return OK if blob.verdict == "ok" else Verdict(silent=blob.verdict, detail=blob.detail)
        if expect.text is not None:
            wanted = op.expected_text(nonce, seed)
            assert wanted is not None
            return OK if text == wanted else _mismatch(text, wanted, nonce, self._foreign)
        if expect.regex is not None:
            if op.regex_matches(text, nonce, seed):
                return OK
            pattern = op.expected_regex(nonce, seed)
            assert pattern is not None
            return Verdict(silent="corrupt", detail=f"{_short(text)} does not match /{pattern.pattern}/")
        if expect.length is not None:
            if len(text) == expect.length:
                return OK
            kind = "truncated" if len(text) < expect.length else "corrupt"
            return Verdict(silent=kind, detail=f"{len(text)} chars, expected {expect.length}")
        if expect.sha256 is not None:
            digest = hashlib.sha256(text.encode()).hexdigest()
            return (
                OK
                if digest == expect.sha256
                else Verdict(
                    silent="corrupt", detail=f"sha256 {digest[:16]}…, expected {expect.sha256[:16]}…"
                )
            )
        if expect.json is not None:
            where = _subset_mismatch(op.expected_json(nonce, seed), result, "result")
            return OK if where is None else Verdict(silent="corrupt", detail=where)
        if expect.consistent:
            if self._reference is None:
                self._reference = text
                return OK
            return OK if text == self._reference else _mismatch(text, self._reference, nonce, self._foreign)
        return OK

    def _result_expectation(self, result: dict[str, Any], nonce: str, seed: int) -> Verdict:
        """The checks of an answer without text: a listing, ``ping``.

        An empty or short listing, or one without a promised name, is ``corrupt``: the answer
        has the right shape (a malformed one was caught before) but the wrong content.
        """
        op = self.op
        expect = op.expect
        if expect.json is not None:
            where = _subset_mismatch(op.expected_json(nonce, seed), result, "result")
            if where is not None:
                return Verdict(silent="corrupt", detail=where)
        list_key = LIST_KEYS.get(op.method)
        if list_key is not None:
            items: list[Any] = result[list_key]
            names = op.expected_names(nonce, seed)
            if names:
                present = _listed_names(items)
                missing = [name for name in names if name not in present]
                if missing:
                    return Verdict(
                        silent="corrupt",
                        detail=f"{op.method} lacks {', '.join(map(repr, missing))} ({len(items)} listed)",
                    )
            if expect.min_items is not None and len(items) < expect.min_items:
                return Verdict(
                    silent="corrupt",
                    detail=f"{op.method}: {len(items)} {list_key}, expected at least {expect.min_items}",
                )
            if expect.max_items is not None and len(items) > expect.max_items:
                return Verdict(
                    silent="corrupt",
                    detail=f"{op.method}: {len(items)} {list_key}, expected at most {expect.max_items}",
                )
        if expect.consistent:
            canonical = orjson.dumps(result, option=orjson.OPT_SORT_KEYS).decode()
            if self._reference is None:
                self._reference = canonical
            elif canonical != self._reference:
                return Verdict(
                    silent="corrupt",
                    detail=f"got {_short(canonical)}, first answer {_short(self._reference)}",
                )
        return OK


def _listed_names(items: list[Any]) -> set[str]:
    """The names in a listing; a resource counts by its name and by its URI."""
    names: set[str] = set()
    for item in items:
        if isinstance(item, dict):
            names.update(value for key in ("name", "uri") if isinstance(value := item.get(key), str))
    return names


def _text_of(method: str, result: dict[str, Any]) -> tuple[str | None, str]:
    """The text an answer carries, or a description of why its shape is wrong."""
    try:
        if method == "tools/call":
            return "".join(c["text"] for c in result["content"] if c.get("type") == "text"), ""
        if method == "resources/read":
            return "".join(c.get("text", "") for c in result["contents"]), ""
        if method == "prompts/get":
            return "".join(m["content"].get("text", "") for m in result["messages"]), ""
        list_key = LIST_KEYS.get(method)
        if list_key is not None and not isinstance(result.get(list_key), list):
            return None, f"{method} result has no {list_key!r} list"
    except (KeyError, TypeError, AttributeError) as exc:
        return None, f"{method} result lacks {exc!s}: {_short(str(result))}"
    return None, ""


def _blob_request(method: str, params: dict[str, Any] | None) -> tuple[int | None, int]:
    if params is None:
        return None, 0
    if method == "resources/read":
        match = _BLOB_URI.match(str(params.get("uri", "")))
        if match is None:
            return None, 0
        return int(match.group(1)), int(match.group(2) or 0)
    arguments = params.get("arguments") or {}
    try:
        return int(arguments["n_bytes"]), int(arguments.get("seed", 0))
    except (KeyError, TypeError, ValueError):
        return None, 0


def _mismatch(got: str, wanted: str, nonce: str, check_nonces: bool) -> Verdict:
    if len(got) < len(wanted) and wanted.startswith(got):
        return Verdict(silent="truncated", detail=f"{len(got)} of {len(wanted)} chars arrived")
    if check_nonces and nonce not in got and (foreign := NONCE_RE.search(got)) is not None:
        return Verdict(silent="misrouted", detail=f"answer carries another request's nonce {foreign.group()}")
    return Verdict(silent="corrupt", detail=f"got {_short(got)}, expected {_short(wanted)}")


def _subset_mismatch(expected: Any, got: Any, path: str) -> str | None:
    """Where ``got`` fails to contain ``expected`` (dicts: subset of keys; lists: element-wise prefix)."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"{path}: expected an object"
        for key, value in expected.items():
            if key not in got:
                return f"{path}.{key}: missing"
            if (where := _subset_mismatch(value, got[key], f"{path}.{key}")) is not None:
                return where
        return None
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) < len(expected):
            return f"{path}: expected a list of at least {len(expected)}"
        for i, value in enumerate(expected):
            if (where := _subset_mismatch(value, got[i], f"{path}[{i}]")) is not None:
                return where
        return None
    return None if expected == got else f"{path}: {_short(repr(got))} != {_short(repr(expected))}"


def _short(text: str | None, limit: int = 80) -> str:
    if text is None:
        return "<none>"
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"…(+{len(text) - limit})"
