"""The results directory: where a run goes, writing run.json and reading it back.

run.json is a contract (README, "Results"): self-describing through ``schema``, written
atomically so that a reader (or an interrupted run) never sees half a file. Its shape is
:class:`~loadtest.results.model.RunDocument`; :func:`write_run` is the one writer,
:func:`load_run` (as JSON) and :func:`read_run` (typed) the one reader, migrating older
versions on the way in.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import socket
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import orjson

from loadtest.core.errors import UsageError
from loadtest.core.names import REDACTED, RUN_FILE
from loadtest.results.model import SCHEMA, RunDocument, Totals, TransportSection, migrate

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Words of a key (split at non-alphanumerics and camelCase humps) that mark it as secret.
_SECRET_WORDS = frozenset(
    {"auth", "authorization", "authentication", "bearer", "pwd", "passphrase", "credential", "credentials"}
)
# A word ending in one of these is secret too: catches "apikey", "githubtoken", "sessioncookie".
# Plain "tokens" and "keys" are not (``max_tokens`` is an LLM parameter, not a secret).
_SECRET_ENDINGS = (
    "token",
    "key",
    "secret",
    "secrets",
    "password",
    "passwords",
    "passwd",
    "cookie",
    "cookies",
)
_KEY_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def run_dir(base: Path, scenario_name: str, started: datetime) -> Path:
    """Create and return ``<base>/<YYYYmmdd-HHMMSS>-<name>/``, suffixed ``-2``, ``-3``... if taken.

    An aware ``started`` is named in UTC, like the times inside run.json.
    """
    if started.tzinfo is not None:
        started = started.astimezone(timezone.utc)
    name = _NAME_UNSAFE.sub("-", scenario_name).strip("-.") or "run"
    stem = f"{started:%Y%m%d-%H%M%S}-{name}"
    base.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = base / (stem if n == 1 else f"{stem}-{n}")
        try:
            # mkdir without exist_ok claims the name atomically, even against a concurrent run.
            path.mkdir()
        except FileExistsError:
            n += 1
            continue
        return path


def _cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            key, _, value = line.partition(":")
            # x86 says "model name"; some ARM kernels only "Hardware" or "Processor".
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def environment() -> dict[str, Any]:
    """Where this run happens: host, os, kernel, python, cpu model, cores and a machine fingerprint.

    ``machine_fingerprint`` (16 hex digits) covers what must match for two runs to be compared:
    the CPU model, the core count and the Python implementation and version (major.minor: the
    software the SDK under test runs on). The kernel release is recorded (``kernel``) but left
    out: hosted CI runners update kernels between nights, and ``compare`` only warns about it.
    ``compare`` checks the facts themselves, so runs written with the older fingerprint (which
    had the kernel in it) still compare.
    """
    cpu = _cpu_model()
    cores = os.cpu_count()
    impl = platform.python_implementation()
    python_minor = ".".join(platform.python_version_tuple()[:2])
    fingerprint = hashlib.sha256(f"{cpu}|{cores}|{impl}|{python_minor}".encode()).hexdigest()[:16]
    return {
        "host": socket.gethostname(),
        "os": platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": impl,
        "cpu_model": cpu,
        "cores": cores,
        "machine_fingerprint": fingerprint,
    }


def _looks_secret(key: str) -> bool:
    for word in _KEY_WORDS.findall(key):
        lower = word.lower()
        if lower in _SECRET_WORDS or lower.endswith(_SECRET_ENDINGS):
            return True
    return False


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return redact_env(value)
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    return value


def redact_env(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``mapping`` with the values of secret-looking keys replaced by ``"<redacted>"``.

    Keys are split into words (``X-Api-Key`` -> x, api, key; ``accessToken`` -> access, token);
    a key is secret if a word is a secret word (auth, authorization, bearer, credential...) or
    ends in token, key, secret, password, passwd or cookie. Nested mappings and lists are
    redacted too; empty values are left as they are, since they reveal nothing.
    """
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(key, str) and _looks_secret(key) and value not in (None, ""):
            out[key] = REDACTED
        else:
            out[key] = _redact(value)
    return out


def build_run(
    meta: Mapping[str, Any],
    scenario: Mapping[str, Any],
    transports: Mapping[str, Any],
    totals: Mapping[str, Any],
    thresholds: list[Any],
    checks: list[Any] | None = None,
) -> dict[str, Any]:
    """The run document as JSON, keys in contract order; ``checks`` only when conformance ran.

    ``transports`` may hold typed sections or their JSON.
    """
    sections = {
        name: section if isinstance(section, TransportSection) else TransportSection.from_json(section)
        for name, section in transports.items()
    }
    document = RunDocument(
        meta=cast(Any, dict(meta)),
        scenario=dict(scenario),
        transports=sections,
        totals=cast(Totals, dict(totals)),
        thresholds=list(thresholds),
        checks=None if checks is None else list(checks),
    )
    return document.to_json()


def write_run(directory: Path, run: RunDocument | Mapping[str, Any]) -> Path:
    """Write ``run`` (typed, or its JSON) as ``directory/run.json``, atomically; returns the path.

    ``schema`` goes first whatever ``run`` says. The temporary file is in the same directory
    (``os.replace`` is atomic only within one filesystem) and is fsynced before the rename,
    so a crash leaves either the old file or the new one, never a torn one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(run, RunDocument):
        run = run.to_json()
    document = {"schema": SCHEMA, **{k: v for k, v in run.items() if k != "schema"}}
    data = orjson.dumps(
        document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
    )
    target = directory / RUN_FILE
    fd, tmp_name = tempfile.mkstemp(prefix=f".{RUN_FILE}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename itself is durable only once the directory is synced; not every platform
    # lets a directory be opened, and the file is already complete, so this is best effort.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return target


def load_run(dir_or_file: Path) -> dict[str, Any]:
    """Read a run.json (given it or its directory) as JSON, migrated to the current schema.

    :class:`UsageError` (one line naming the file) if it is not a run, or a newer one.
    """
    path = dir_or_file / RUN_FILE if dir_or_file.is_dir() else dir_or_file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        where = f"{dir_or_file}: no {RUN_FILE} there" if dir_or_file.is_dir() else f"{path}: no such file"
        raise UsageError(f"{where}; expected an mcp-loadtest run directory") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        run = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise UsageError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(run, dict):
        raise UsageError(f"{path}: not an mcp-loadtest run (not a JSON object)")
    return migrate(run, str(path))


def read_run(dir_or_file: Path) -> RunDocument:
    """:func:`load_run`, typed."""
    path = dir_or_file / RUN_FILE if dir_or_file.is_dir() else dir_or_file
    return RunDocument.from_json(load_run(dir_or_file), str(path))


__all__ = [
    "REDACTED",
    "RUN_FILE",
    "SCHEMA",
    "build_run",
    "environment",
    "load_run",
    "read_run",
    "redact_env",
    "run_dir",
    "write_run",
]
