"""stdio checks (every spec version, ``basic/transports#stdio`` and ``basic/lifecycle#shutdown``).

The server is launched with raw pipes and its stdout read as bytes, so that every byte it
writes is accounted for: each line must be one complete JSON-RPC message, UTF-8, and nothing
else may appear there. Shutdown is timed: close stdin and wait; in a second process, SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import orjson

from loadtest.conformance.model import ALL, FUTURE_VERSION, SPEC_VERSIONS, CheckResult, CheckSpec, Status
from loadtest.conformance.probe import initialize_params, preview, rpc
from loadtest.core.errors import TargetError
from loadtest.core.process import TargetProcess, launch

T = "stdio"
_REF = "basic/transports#stdio"
_SHUTDOWN = "basic/lifecycle#stdio"
LATEST = SPEC_VERSIONS[-1]
#: How long the server may take to exit after stdin closes, and after SIGTERM (what our launcher waits).
EXIT_GRACE_S = 2.0
START_TIMEOUT_S = 20.0
#: Non-ASCII text in a request id: the answer must carry it back byte for byte.
UTF8_ID = "ping-ü-✓-日本"


def _spec(
    id: str, name: str, description: str, ref: str = _REF, versions: tuple[str, ...] = ALL
) -> CheckSpec:
    return CheckSpec(f"{T}-{id}", name, description, versions, ref)


INITIALIZE = _spec(
    "initialize",
    "ServerInitialize",
    "initialize returns a result with protocolVersion, capabilities and serverInfo",
    "basic/lifecycle#initialization",
)
NEGOTIATE_LATEST = _spec(
    f"negotiate-{LATEST}",
    f"VersionNegotiation{LATEST.replace('-', '')}",
    f"initialize asking for {LATEST}",
    "basic/lifecycle#version-negotiation",
)
NEGOTIATE_FUTURE = _spec(
    "negotiate-future",
    "VersionNegotiationFuture",
    f"initialize asking for {FUTURE_VERSION}: the server answers a version it supports",
    "basic/lifecycle#version-negotiation",
)
NEWLINES = _spec(
    "newline-delimited",
    "NewlineDelimitedMessages",
    "Each message is one line ending in \\n, with no embedded newline",
)
UTF8 = _spec(
    "utf8",
    "Utf8Encoding",
    "Messages are UTF-8: a non-ASCII request id comes back byte for byte",
    versions=SPEC_VERSIONS[1:],
)
STDOUT_ONLY = _spec("stdout-only-mcp", "StdoutOnlyMcp", "Nothing but JSON-RPC messages is written to stdout")
PING = _spec("ping", "Ping", "ping is answered with an empty result", "basic/utilities/ping")
ERROR_METHOD = _spec(
    "error-unknown-method",
    "ErrorEnvelopeUnknownMethod",
    "An unknown method gets a JSON-RPC error (-32601) carrying the request's id",
    "basic#responses",
)
STDERR = _spec(
    "stderr", "StderrLogging", "stderr may carry logs (recorded); the client must keep draining it"
)
EXIT_STDIN = _spec(
    "exit-on-stdin-close",
    "ExitOnStdinClose",
    "The server exits once its stdin is closed (the client then waits, SIGTERMs, SIGKILLs)",
    _SHUTDOWN,
)
SIGTERM = _spec(
    "sigterm", "ExitOnSigterm", "The server exits on SIGTERM (else the client must SIGKILL it)", _SHUTDOWN
)


class Pipe:
    """A launched server's stdin and stdout, with every stdout line kept."""

    def __init__(self, target: TargetProcess) -> None:
        self.target = target
        self.buffer = b""
        self.lines: list[bytes] = []
        self.unterminated = b""

    async def send(self, message: dict[str, Any]) -> None:
        stdin = self.target.process.stdin
        assert stdin is not None
        await stdin.send(orjson.dumps(message) + b"\n")

    async def answer(self, request_id: Any, timeout: float = 10.0) -> dict[str, Any] | None:
        """Read lines until the response to ``request_id``; None on timeout or EOF."""
        stdout = self.target.process.stdout
        assert stdout is not None
        with anyio.move_on_after(timeout):
            while True:
                for line in self._take_lines():
                    with contextlib.suppress(orjson.JSONDecodeError):
                        message = orjson.loads(line)
                        if (
                            isinstance(message, dict)
                            and message.get("id") == request_id
                            and "method" not in message
                        ):
                            return message
                try:
                    chunk = await stdout.receive(65536)
                except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self.unterminated = self.buffer
                    return None
                self.buffer += chunk
        return None

    def _take_lines(self) -> list[bytes]:
        *complete, self.buffer = self.buffer.split(b"\n")
        self.lines.extend(complete)
        return complete

    async def drain(self, timeout: float) -> None:
        """Read what is left on stdout until EOF (the process is exiting)."""
        stdout = self.target.process.stdout
        assert stdout is not None
        with (
            anyio.move_on_after(timeout),
            contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError),
        ):
            while True:
                self.buffer += await stdout.receive(65536)
                self._take_lines()
        self.unterminated = self.buffer


async def _wait_exit(target: TargetProcess, timeout: float) -> float | None:
    started = time.perf_counter()
    with anyio.move_on_after(timeout):
        await target.process.wait()
        return time.perf_counter() - started
    return None


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    return f"code {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"


async def run_stdio_checks(
    command: Sequence[str], env: Mapping[str, str] | None = None, *, stderr_log: Path | None = None
) -> list[CheckResult]:
    """Every stdio check against the server ``command`` launches (twice: stdin close, SIGTERM)."""
    results: list[CheckResult] = []
    async with launch(command, env=env, stderr_log=stderr_log) as target:
        pipe = Pipe(target)
        await pipe.send(rpc("initialize", 1, initialize_params(LATEST)))
        init = await pipe.answer(1, START_TIMEOUT_S)
        if init is None:
            exited = await _wait_exit(target, 0.5) is not None
            why = (
                target.describe_exit()
                if exited
                else f"{command[0]!r} did not answer initialize within {START_TIMEOUT_S:g}s"
            )
            raise TargetError(f"the stdio target {why}")
        results += _initialize(init)
        await pipe.send(rpc("notifications/initialized"))
        await pipe.send(rpc("ping", 2))
        pong = await pipe.answer(2)
        ok = pong is not None and pong.get("result") == {}
        results.append(
            PING.result(
                T, _verdict(ok), "ping -> " + ("result {}" if ok else repr(pong)[:80]), {"answer": pong}
            )
        )
        await pipe.send(rpc("ping", UTF8_ID))
        utf = await pipe.answer(UTF8_ID)
        ok = utf is not None
        results.append(
            UTF8.result(
                T,
                _verdict(ok),
                "non-ASCII id -> " + ("echoed" if ok else "not echoed"),
                {"sent_id": UTF8_ID, "answer": utf},
                None if ok else "the id did not come back intact",
            )
        )
        await pipe.send(rpc("loadtest/no-such-method", 3))
        err = await pipe.answer(3, timeout=3.0)
        error = (err or {}).get("error")
        code = error.get("code") if isinstance(error, dict) else None
        status: Status = "SUCCESS" if code == -32601 else ("WARNING" if isinstance(code, int) else "FAILURE")
        results.append(
            ERROR_METHOD.result(
                T,
                status,
                "unknown method -> " + (f"error {code}, id echoed" if err else "no answer"),
                {"answer": err},
                None if status == "SUCCESS" else "expected error -32601",
            )
        )

        # Shutdown, the way the spec tells clients to: close stdin, wait, then escalate.
        stdin = target.process.stdin
        assert stdin is not None
        await stdin.aclose()
        started = time.perf_counter()
        await pipe.drain(EXIT_GRACE_S)
        elapsed = await _wait_exit(target, max(0.0, EXIT_GRACE_S - (time.perf_counter() - started)))
        if elapsed is not None:
            elapsed = time.perf_counter() - started
            results.append(
                EXIT_STDIN.result(
                    T,
                    "SUCCESS",
                    f"stdin closed -> exits ({_exit_text(target.returncode)})",
                    {"exit_after_s": round(elapsed, 3), "returncode": target.returncode},
                )
            )
        else:
            escalation = await _escalate(target)
            results.append(
                EXIT_STDIN.result(
                    T,
                    "WARNING",
                    f"stdin closed -> still running; {escalation}",
                    {"waited_s": EXIT_GRACE_S},
                    f"did not exit within {EXIT_GRACE_S:g}s of stdin closing",
                )
            )
        results += _wire(pipe, target)

    results += await _sigterm(command, env)
    return results


def _verdict(ok: bool, otherwise: Status = "FAILURE") -> Status:
    return "SUCCESS" if ok else otherwise


def _initialize(answer: dict[str, Any]) -> list[CheckResult]:
    result = answer.get("result")
    version = result.get("protocolVersion") if isinstance(result, dict) else None
    ok = (
        isinstance(result, dict)
        and isinstance(version, str)
        and isinstance(result.get("capabilities"), dict)
        and isinstance(result.get("serverInfo"), dict)
    )
    return [
        INITIALIZE.result(
            T,
            _verdict(ok),
            f"initialize -> protocolVersion {version}",
            {"answer": preview(orjson.dumps(answer))},
            None if ok else "no valid initialize result",
        ),
        NEGOTIATE_LATEST.result(T, "SUCCESS" if version else "FAILURE", f"asked {LATEST} -> {version}", {}),
    ]


def _wire(pipe: Pipe, target: TargetProcess) -> list[CheckResult]:
    lines = [line for line in pipe.lines if line.strip()]
    not_json = [line for line in lines if not _parses(line)]
    not_rpc = [line for line in lines if _parses(line) and not _is_rpc(orjson.loads(line))]
    bad_utf8 = [line for line in lines if not _utf8(line)]
    tail = pipe.unterminated.strip()
    details = {
        "lines": len(lines),
        "not_json": [preview(x) for x in not_json[:3]],
        "unterminated": preview(tail),
    }
    ok = not not_json and not tail
    results = [
        NEWLINES.result(
            T,
            _verdict(ok),
            f"{'every line one JSON message' if ok else 'lines that are not one JSON message'}",
            details,
            None if ok else "a line is not exactly one JSON message",
        ),
        STDOUT_ONLY.result(
            T,
            _verdict(not not_json and not not_rpc and not bad_utf8),
            "stdout: JSON-RPC only" if not (not_json or not_rpc) else "stdout: non-MCP output",
            {
                "lines": len(lines),
                "not_jsonrpc": [preview(x) for x in (not_json + not_rpc)[:3]],
                "invalid_utf8": len(bad_utf8),
            },
            None
            if not (not_json or not_rpc or bad_utf8)
            else "stdout carries something other than MCP messages",
        ),
    ]
    err = target.stderr_tail()
    results.append(
        STDERR.result(T, "INFO", "stderr used" if err else "stderr empty", {"stderr_tail": preview(err)})
    )
    return results


def _parses(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_rpc(message: Any) -> bool:
    items = message if isinstance(message, list) else [message]
    return bool(items) and all(isinstance(m, dict) and m.get("jsonrpc") == "2.0" for m in items)


async def _escalate(target: TargetProcess) -> str:
    """SIGTERM, wait, SIGKILL: what happened, in words."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(target.pid, sig)
        if await _wait_exit(target, EXIT_GRACE_S) is not None:
            return f"{sig.name} -> exits ({_exit_text(target.returncode)})"
    return "SIGKILL -> still running"


async def _sigterm(command: Sequence[str], env: Mapping[str, str] | None) -> list[CheckResult]:
    """A second server: negotiate an unknown future version, then SIGTERM with stdin still open."""
    results = []
    async with launch(command, env=env) as target:
        pipe = Pipe(target)
        await pipe.send(rpc("initialize", 1, initialize_params(FUTURE_VERSION)))
        init = await pipe.answer(1, START_TIMEOUT_S)
        result = (init or {}).get("result")
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        status: Status = (
            "SUCCESS"
            if version and version != FUTURE_VERSION
            else ("WARNING" if version is None else "FAILURE")
        )
        results.append(
            NEGOTIATE_FUTURE.result(
                T,
                status,
                f"asked {FUTURE_VERSION} -> {version or 'no result'}",
                {"answer": preview(orjson.dumps(init)) if init else None},
            )
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(target.pid, signal.SIGTERM)
        elapsed = await _wait_exit(target, EXIT_GRACE_S)
        if elapsed is not None:
            results.append(
                SIGTERM.result(
                    T,
                    "SUCCESS",
                    f"SIGTERM -> exits ({_exit_text(target.returncode)})",
                    {"exit_after_s": round(elapsed, 3), "returncode": target.returncode},
                )
            )
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target.pid, signal.SIGKILL)
            await _wait_exit(target, EXIT_GRACE_S)
            results.append(
                SIGTERM.result(
                    T,
                    "WARNING",
                    "SIGTERM ignored -> SIGKILL",
                    {"waited_s": EXIT_GRACE_S, "returncode": target.returncode},
                    f"still running {EXIT_GRACE_S:g}s after SIGTERM",
                )
            )
    return results
