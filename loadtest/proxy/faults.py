"""What the proxy injects, on which messages, and what a checking client should report.

A fault is applied to one JSON-RPC message travelling from the server to the client: a
response to a request the proxy saw go the other way (never ``initialize``), or a progress
notification for such a request. Each fault kind is chosen so that its consequence for a
client that checks every answer is unambiguous (:func:`expectation`); the proxy logs that
consequence next to every injection, so a test can add up the log and compare it with what
the tester reported.

The schedule is seeded: every fault kind has its own ``random.Random`` (seeded from the run
seed and the kind's name) that is drawn once per message that fault could apply to, so the
same seed and the same traffic give the same injections.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadtest.core.errors import UsageError
from loadtest.proxy.tracking import Tracked

#: Every fault kind, in the order the documentation lists them.
FAULT_KINDS = (
    "drop_response",
    "drop_notification",
    "truncate",
    "alter",
    "malformed",
    "duplicate",
    "swap",
    "foreign_id",
    "delay",
    "cut",
    "close_stream",
    "reset",
)
#: How the proxy frames messages towards the client. ``http`` is a Streamable HTTP POST
#: answered with an SSE stream, ``http-json`` one answered with ``application/json``.
FRAMINGS = ("stdio", "sse", "http", "http-json")
#: Faults that need a text in the result (tool content, resource contents, prompt messages).
_NEEDS_TEXT = frozenset({"truncate", "alter", "swap"})
#: Faults that end the client's whole session on these framings (a closed pipe or event stream).
_SESSION_ENDING = {("close_stream", "sse"), ("close_stream", "stdio"), ("reset", "sse"), ("reset", "stdio")}
#: Default hold for ``delay`` (how late the response comes) and ``swap`` (how long a response
#: waits for a partner before it is let through unchanged), in ms.
DEFAULT_DELAY_MS = 2000.0
DEFAULT_SWAP_HOLD_MS = 250.0
_FOREIGN_ID_OFFSET = 1 << 40


@dataclass(frozen=True, slots=True)
class Expectation:
    """What one injection should make a checking client report."""

    #: Silent failures, by kind (exact).
    silent: Mapping[str, int] = field(default_factory=dict)
    #: Loud errors, by kind (exact for the injected call; see ``ends_session``).
    loud: Mapping[str, int] = field(default_factory=dict)
    #: Loud anomalies that follow when timing allows (a delayed answer that still arrives is ``late``).
    maybe_loud: Mapping[str, int] = field(default_factory=dict)
    #: The client's session is over: every later call on it fails loudly too.
    ends_session: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"silent": dict(self.silent), "loud": dict(self.loud)}
        if self.maybe_loud:
            out["maybe_loud"] = dict(self.maybe_loud)
        if self.ends_session:
            out["ends_session"] = True
        return out


def expectation(kind: str, framing: str) -> Expectation:
    """The documented classification of fault ``kind`` delivered over ``framing``."""
    if kind == "drop_response":
        return Expectation(silent={"lost": 1})
    if kind == "drop_notification":
        return Expectation(silent={"notification_lost": 1})
    if kind == "truncate":
        return Expectation(silent={"truncated": 1})
    if kind == "alter":
        return Expectation(silent={"corrupt": 1})
    if kind == "malformed":
        return Expectation(silent={"malformed": 1})
    if kind == "duplicate":
        return Expectation(silent={"duplicate": 1})
    if kind == "swap":
        return Expectation(silent={"misrouted": 2})
    if kind == "foreign_id":
        return Expectation(silent={"misrouted": 1, "lost": 1})
    if kind == "delay":
        return Expectation(silent={"lost": 1}, maybe_loud={"late": 1})
    if kind == "cut":
        if framing in ("stdio", "sse"):
            # The broken line or event cannot be tied to a request: it is a loud error of its
            # own, and the request it carried then goes unanswered.
            return Expectation(silent={"lost": 1}, loud={"non_json": 1})
        return Expectation(loud={"non_json": 1})
    if kind == "close_stream":
        if framing == "http":
            # The POST's event stream ends cleanly before the response event is complete:
            # nothing reports a problem, the request is never answered.
            return Expectation(silent={"lost": 1})
        if framing == "http-json":
            return Expectation(loud={"connection": 1})
        if framing == "sse":
            return Expectation(loud={"stream_closed": 1}, ends_session=True)
        return Expectation(loud={"server_exit": 1}, maybe_loud={"truncated_line": 1}, ends_session=True)
    if kind == "reset":
        if framing in ("http", "http-json"):
            return Expectation(loud={"connection": 1})
        if framing == "sse":
            return Expectation(loud={"stream_broken": 1}, ends_session=True)
        return Expectation(loud={"server_exit": 1}, ends_session=True)
    raise ValueError(f"unknown fault kind {kind!r}")


# -- the fault plan -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault kind and when it fires: with ``probability``, or on every ``every``-th message."""

    kind: str
    probability: float = 0.0
    every: int = 0
    #: Inject at most this many (0: no limit).
    limit: int = 0
    #: Leave the first ``after`` messages this fault could apply to alone.
    after: int = 0
    #: ``delay``: how late; ``swap``: how long to wait for a partner.
    ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for key in ("probability", "every", "limit", "after", "ms"):
            if value := getattr(self, key):
                out[key] = value
        return out


def parse_faults(text: str) -> tuple[FaultSpec, ...]:
    """Parse ``--faults``: ``KIND:P`` or ``KIND:every=N``, options ``max=M``, ``after=K``, ``ms=D``.

    Items are separated by commas, a kind's options by colons:
    ``drop_response:0.05,delay:every=20:ms=1500:max=3``. Raises :class:`UsageError`.
    """
    specs: list[FaultSpec] = []
    seen: set[str] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kind, *options = item.split(":")
        kind = kind.strip()
        if kind not in FAULT_KINDS:
            raise UsageError(f"--faults: unknown fault kind {kind!r} (known: {', '.join(FAULT_KINDS)})")
        if kind in seen:
            raise UsageError(f"--faults: {kind!r} is given twice")
        seen.add(kind)
        values: dict[str, float] = {}
        for option in options:
            key, sep, raw = option.partition("=")
            if not sep:
                key, raw = "p", key
            key = {"max": "limit"}.get(key.strip(), key.strip())
            if key not in ("p", "every", "limit", "after", "ms"):
                raise UsageError(f"--faults: {kind}: unknown option {key!r} (p, every, max, after, ms)")
            try:
                value = float(raw)
            except ValueError:
                raise UsageError(f"--faults: {kind}: {key} must be a number, got {raw!r}") from None
            if key == "p" and not 0.0 <= value <= 1.0:
                raise UsageError(f"--faults: {kind}: probability {raw} is not between 0 and 1")
            if key in ("every", "limit", "after") and (
                value != int(value) or value < (1 if key == "every" else 0)
            ):
                raise UsageError(
                    f"--faults: {kind}: {key} must be a whole number{' >= 1' if key == 'every' else ''}, got {raw!r}"
                )
            if key == "ms" and value < 0:
                raise UsageError(f"--faults: {kind}: ms must not be negative, got {raw!r}")
            values[key] = value
        if not values.get("p") and not values.get("every"):
            raise UsageError(
                f"--faults: {kind}: say how often, as {kind}:0.05 (probability) or {kind}:every=20"
            )
        default_ms = DEFAULT_DELAY_MS if kind == "delay" else DEFAULT_SWAP_HOLD_MS if kind == "swap" else 0.0
        specs.append(
            FaultSpec(
                kind,
                probability=values.get("p", 0.0),
                every=int(values.get("every", 0)),
                limit=int(values.get("limit", 0)),
                after=int(values.get("after", 0)),
                ms=values.get("ms", default_ms),
            )
        )
    return tuple(specs)


class Schedule:
    """Decides, message by message, which fault (if any) to inject; seeded and reproducible."""

    def __init__(self, specs: tuple[FaultSpec, ...], seed: int) -> None:
        self.specs = specs
        self._rngs = {spec.kind: random.Random(f"{seed}:{spec.kind}") for spec in specs}
        self._seen: Counter[str] = Counter()
        self.injected: Counter[str] = Counter()

    def decide(self, eligible: frozenset[str]) -> FaultSpec | None:
        """The first configured fault among ``eligible`` kinds that fires for this message."""
        for spec in self.specs:
            if spec.kind not in eligible:
                continue
            kind = spec.kind
            self._seen[kind] += 1
            n = self._seen[kind]
            draw = self._rngs[kind].random()  # drawn for every candidate: the schedule stays put
            if n <= spec.after or (spec.limit and self.injected[kind] >= spec.limit):
                continue
            fires = (spec.every and (n - spec.after) % spec.every == 0) or draw < spec.probability
            if fires:
                return spec
        return None

    def count(self, kind: str) -> None:
        self.injected[kind] += 1

    def under_limit(self, kind: str) -> bool:
        spec = next((s for s in self.specs if s.kind == kind), None)
        return spec is not None and (not spec.limit or self.injected[kind] < spec.limit)


# -- the injection log --------------------------------------------------------------------------


class InjectionLog:
    """JSON lines, one per injected fault; several proxy processes may append to one file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        if path is not None:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as exc:
                raise UsageError(f"--log: cannot open {str(path)!r}: {exc.strerror or exc}") from None
        self.counts: Counter[str] = Counter()

    def write(self, record: dict[str, Any]) -> None:
        self.counts[record["fault"]] += 1
        if self._fd is not None:
            # One write per record: O_APPEND keeps records of concurrent writers whole.
            os.write(self._fd, orjson.dumps(record) + b"\n")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def summary(self) -> str:
        if not self.counts:
            return "no faults injected"
        return "injected " + ", ".join(f"{kind}={n}" for kind, n in sorted(self.counts.items()))


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of an injection log (for tests and reports)."""
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def expected_totals(records: list[dict[str, Any]]) -> tuple[Counter[str], Counter[str], Counter[str], bool]:
    """Sum the expectations of logged injections: (silent, loud, maybe_loud, any session ended)."""
    silent: Counter[str] = Counter()
    loud: Counter[str] = Counter()
    maybe: Counter[str] = Counter()
    ended = False
    for record in records:
        expect = record["expect"]
        silent.update(expect["silent"])
        loud.update(expect["loud"])
        maybe.update(expect.get("maybe_loud", {}))
        ended = ended or bool(expect.get("ends_session"))
    return silent, loud, maybe, ended


# -- message surgery (the result stays valid JSON-RPC unless the fault is about bytes) ----------


def text_slots(result: Any) -> list[tuple[dict[str, Any], str]]:
    """Where a result keeps its text: (the dict holding it, the key), in order."""
    slots: list[tuple[dict[str, Any], str]] = []
    if not isinstance(result, dict):
        return slots
    for key, inner in (("content", None), ("contents", None), ("messages", "content")):
        items = result.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            holder = item.get(inner) if inner is not None and isinstance(item, dict) else item
            if isinstance(holder, dict) and isinstance(holder.get("text"), str):
                slots.append((holder, "text"))
    return slots


def longest_text(message: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    slots = text_slots(message.get("result"))
    if not slots:
        return None
    holder, key = max(slots, key=lambda slot: len(slot[0][slot[1]]))
    return (holder, key) if holder[key] else None


#: Anything that looks like a nonce, generously: a byte changed inside one could read as
#: another request's nonce (misrouted), not as corruption.
_NONCE_LIKE = re.compile(r"nonce-[0-9A-Za-z]*-?[0-9]*")


def alter_position(text: str, rng: random.Random) -> int | None:
    """A position in ``text`` whose change reads as corruption, not as misrouting.

    It avoids nonces and the first record header of a blob (a changed seed there would make
    it another request's blob). None when no such position exists.
    """
    start = 9 if len(text) > 9 and text[8] == ":" else 0
    spans = [m.span() for m in _NONCE_LIKE.finditer(text, start)]
    allowed = len(text) - start - sum(b - a for a, b in spans)
    if allowed <= 0:
        return None
    k = rng.randrange(allowed)
    at = start
    for a, b in spans:
        if at + k < a:
            break
        k -= a - at
        at = b
    return at + k


def altered(char: str) -> str:
    """A different printable ASCII character that needs no JSON escaping."""
    return "#" if char == "~" else "~"


def swap_key(tracked: Tracked) -> str:
    return tracked.op


def now() -> float:
    return time.time()
