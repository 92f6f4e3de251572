"""MCP protocol versions and what each era asks of a client on the wire.

Two eras (the spec's own words, 2026-07-28 ``basic/versioning``):

- **legacy**, 2024-11-05 .. 2025-11-25: an ``initialize`` handshake fixes the version for the
  connection; Streamable HTTP (2025-03-26+) has sessions (``Mcp-Session-Id``), an optional GET
  stream, resumable SSE and DELETE; ``MCP-Protocol-Version`` rides on HTTP requests after the
  handshake (2025-06-18+).
- **modern**, 2026-07-28: no handshake and no sessions. Every request carries the version, the
  client's capabilities and identity in ``params._meta``; every HTTP POST mirrors the method,
  the tool/prompt name or resource URI and the version into headers; every result carries
  ``resultType``, and list/read results the cache hints ``ttlMs`` and ``cacheScope``.

This module holds those facts as data and pure functions; the session and the transports ask
it what to send and whether an answer has the shape its version requires.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from loadtest import __version__

#: Versions negotiated with ``initialize``, newest first. Defined here, not in the transports
#: (which import this module): importing this module first must not load them half-way.
LEGACY_VERSIONS: Final = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
#: Versions declared per request, newest first.
MODERN_VERSIONS: Final = ("2026-07-28",)
#: Every version this client speaks, newest first.
KNOWN_VERSIONS: Final = MODERN_VERSIONS + LEGACY_VERSIONS

#: How a session's version was chosen: ``server/discover`` answered, the ``initialize``
#: handshake chose it (the server predates ``server/discover``), or the user pinned it.
ChosenBy = Literal["discover", "initialize", "pinned"]

PROTOCOL_VERSION_KEY: Final = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY: Final = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_KEY: Final = "io.modelcontextprotocol/clientInfo"
SERVER_INFO_KEY: Final = "io.modelcontextprotocol/serverInfo"
CLIENT_INFO: Final = {"name": "mcp-loadtest", "version": __version__}

#: JSON-RPC error codes only a modern server uses (2026-07-28 ``basic/index``, error codes):
#: HeaderMismatch, MissingRequiredClientCapability, UnsupportedProtocolVersion. One of them in
#: answer to a probe means "this server is modern", never "fall back to initialize".
HEADER_MISMATCH: Final = -32020
MISSING_CLIENT_CAPABILITY: Final = -32021
UNSUPPORTED_PROTOCOL_VERSION: Final = -32022
MODERN_ERROR_CODES: Final = frozenset(
    {HEADER_MISMATCH, MISSING_CLIENT_CAPABILITY, UNSUPPORTED_PROTOCOL_VERSION}
)

#: Methods 2026-07-28 removed: a scenario op calling one is skipped on a modern session.
REMOVED_IN_MODERN: Final = frozenset(
    {
        "initialize",
        "notifications/initialized",
        "ping",
        "logging/setLevel",
        "notifications/roots/list_changed",
        "resources/subscribe",
        "resources/unsubscribe",
    }
)
#: Results that are CacheableResult in 2026-07-28: ``ttlMs`` and ``cacheScope`` are required.
CACHEABLE_METHODS: Final = frozenset(
    {
        "tools/list",
        "prompts/list",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "server/discover",
    }
)
RESULT_TYPES: Final = frozenset({"complete", "input_required"})
#: Methods whose POST also carries ``Mcp-Name``, and the param it mirrors.
_NAME_PARAM: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
#: A ``_meta`` key: optional dotted prefix of labels ending in ``/``, then a name that, unless
#: empty, starts and ends alphanumeric (schema ``MetaObject``).
_META_KEY = re.compile(
    r"(?:[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*/)?"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)?"
)
#: Header values that need no encoding: visible ASCII and space, no edge whitespace.
_PLAIN_HEADER = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def is_modern(version: str) -> bool:
    """Whether ``version`` is stateless (per-request ``_meta``, no handshake, no sessions)."""
    return version in MODERN_VERSIONS


def parse_protocol(text: str) -> str:
    """``auto`` or a known version, as typed by a user; :class:`ValueError` names the choices."""
    value = text.strip()
    if value == "auto" or value in KNOWN_VERSIONS:
        return value
    raise ValueError(f"unknown protocol {text!r}: use auto or one of {', '.join(KNOWN_VERSIONS)}")


def envelope(version: str) -> dict[str, Any]:
    """The ``_meta`` every modern request carries: version, capabilities (none), identity."""
    return {
        PROTOCOL_VERSION_KEY: version,
        CLIENT_CAPABILITIES_KEY: {},
        CLIENT_INFO_KEY: CLIENT_INFO,
    }


def with_envelope(params: dict[str, Any] | None, meta: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with ``meta`` merged into its ``_meta`` (the caller's own keys, e.g. a
    progress token, are kept). ``params`` itself is not changed: op templates may share it."""
    if params is None:
        return {"_meta": dict(meta)}
    own = params.get("_meta")
    return {**params, "_meta": {**meta, **own} if isinstance(own, dict) else dict(meta)}


def request_version(message: Mapping[str, Any]) -> str | None:
    """The modern version a request declares in ``params._meta``; None for a legacy message."""
    params = message.get("params")
    if type(params) is dict:
        meta = params.get("_meta")
        if type(meta) is dict:
            version = meta.get(PROTOCOL_VERSION_KEY)
            if type(version) is str:
                return version
    return None


def header_value(value: str) -> str:
    """``value`` as an ``Mcp-Name`` header: itself when plain ASCII, else the Base64 sentinel
    form ``=?base64?...?=`` (also for a plain value that looks like the sentinel)."""
    if _PLAIN_HEADER.fullmatch(value) and not (value.startswith("=?base64?") and value.endswith("?=")):
        return value
    return "=?base64?" + base64.b64encode(value.encode()).decode("ascii") + "?="


def request_headers(message: Mapping[str, Any], version: str) -> dict[str, str]:
    """The headers a modern POST must carry for ``message`` (2026-07-28 Streamable HTTP,
    request metadata): ``MCP-Protocol-Version``, ``Mcp-Method``, and ``Mcp-Name`` for the
    methods that name a tool, prompt or resource."""
    method = message.get("method")
    headers = {"MCP-Protocol-Version": version}
    if isinstance(method, str):
        headers["Mcp-Method"] = method
        key = _NAME_PARAM.get(method)
        params = message.get("params")
        if key is not None and isinstance(params, dict) and isinstance(name := params.get(key), str):
            headers["Mcp-Name"] = header_value(name)
    return headers


def result_problem(method: str, result: Any) -> str | None:
    """Why ``result`` is not the shape 2026-07-28 requires for ``method``; None if it is.

    Checked on every modern answer: ``resultType`` present and known; ``ttlMs`` (a
    non-negative integer) and ``cacheScope`` (public/private) on cacheable results; ``_meta``
    an object whose keys follow the naming rules and whose ``serverInfo``, when present, is
    an Implementation (name and version strings).
    """
    if type(result) is not dict:
        return f"result is {type(result).__name__}, not an object"
    kind = result.get("resultType")
    if kind is None:
        return "result has no resultType (required by 2026-07-28)"
    if kind not in RESULT_TYPES:
        return f"resultType {str(kind)[:40]!r} is neither 'complete' nor 'input_required'"
    if kind == "complete" and method in CACHEABLE_METHODS:
        ttl = result.get("ttlMs")
        if type(ttl) is not int or ttl < 0:
            return f"{method} result has ttlMs {ttl!r}, not a non-negative integer"
        scope = result.get("cacheScope")
        if scope not in ("public", "private"):
            return f"{method} result has cacheScope {scope!r}, not 'public' or 'private'"
    if "_meta" in result:
        return meta_problem(result["_meta"])
    return None


def meta_problem(meta: Any) -> str | None:
    """Why a result's ``_meta`` is malformed; None if it is well formed."""
    if type(meta) is not dict:
        return f"_meta is {type(meta).__name__}, not an object"
    for key in meta:
        if not _META_KEY.fullmatch(key):
            return f"_meta key {key[:60]!r} breaks the naming rules"
    info = meta.get(SERVER_INFO_KEY)
    if info is not None and not (
        type(info) is dict and isinstance(info.get("name"), str) and isinstance(info.get("version"), str)
    ):
        return f"_meta serverInfo {str(info)[:80]} is not an Implementation (name, version)"
    return None


def newest_common(offered: Any) -> str | None:
    """The newest version in both ``offered`` (a server's list) and :data:`KNOWN_VERSIONS`."""
    if not isinstance(offered, list):
        return None
    return next((v for v in KNOWN_VERSIONS if v in offered), None)


def is_modern_error(kind: str) -> bool:
    """Whether a failed request's kind (``jsonrpc_<code>``) is an error only modern servers send."""
    return (
        kind.startswith("jsonrpc_") and kind[8:].lstrip("-").isdigit() and int(kind[8:]) in MODERN_ERROR_CODES
    )
