"""The requests the proxy saw go upstream, remembered until their responses pass.

A fault applies only to an answer to a request the proxy saw (or a progress notification for
one): the tracker pairs each response with its request, and names the call (``tools/call
echo``) for the injection log and for pairing swaps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Tracked:
    """A request the client sent, remembered until its response passes."""

    method: str
    #: What the call was, for the log and for pairing swaps: ``tools/call echo``, ``resources/read blob``.
    op: str
    progress_token: Any = None
    notification_dropped: bool = False


def describe_request(message: Mapping[str, Any]) -> Tracked:
    method = str(message.get("method"))
    params = message.get("params")
    op = method
    token = None
    if isinstance(params, dict):
        if method in ("tools/call", "prompts/get") and isinstance(params.get("name"), str):
            op = f"{method} {params['name']}"
        elif method == "resources/read" and isinstance(params.get("uri"), str):
            op = f"{method} {params['uri'].partition(':')[0]}"
        meta = params.get("_meta")
        if isinstance(meta, dict):
            token = meta.get("progressToken")
    return Tracked(method, op, token)


class Tracker:
    """Requests in flight, by (scope, id); scope separates clients (a session id, a pipe)."""

    #: Bound on remembered requests: answers that never come must not grow this forever.
    LIMIT = 200_000

    def __init__(self) -> None:
        self._requests: dict[tuple[Any, Any], Tracked] = {}
        self._tokens: dict[tuple[Any, Any], Tracked] = {}

    def add(self, scope: Any, decoded: Any) -> None:
        for message in decoded if isinstance(decoded, list) else [decoded]:
            if not isinstance(message, dict) or "method" not in message or "id" not in message:
                continue
            request_id = message["id"]
            if not isinstance(request_id, (int, str)):
                continue
            tracked = describe_request(message)
            if len(self._requests) >= self.LIMIT:
                oldest = next(iter(self._requests))
                gone = self._requests.pop(oldest)
                self._tokens.pop((oldest[0], gone.progress_token), None)
            self._requests[(scope, request_id)] = tracked
            if tracked.progress_token is not None:
                self._tokens[(scope, tracked.progress_token)] = tracked

    def response(self, scope: Any, request_id: Any) -> Tracked | None:
        """The request ``request_id`` answers (forgotten from now on), or None."""
        if not isinstance(request_id, (int, str)):
            return None
        tracked = self._requests.pop((scope, request_id), None)
        if tracked is not None and tracked.progress_token is not None:
            self._tokens.pop((scope, tracked.progress_token), None)
        return tracked

    def peek(self, scope: Any, request_id: Any) -> Tracked | None:
        if not isinstance(request_id, (int, str)):
            return None
        return self._requests.get((scope, request_id))

    def progress(self, scope: Any, token: Any) -> Tracked | None:
        if not isinstance(token, (int, str)):
            return None
        return self._tokens.get((scope, token))


__all__ = ["Tracked", "Tracker", "describe_request"]
