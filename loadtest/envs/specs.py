"""SDK specs: what to install for ``1.23.1``, ``mcp==1.23.1``, a git URL or a local checkout
(no network, no git), and the compatibility pins old releases need."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from loadtest.core.errors import UsageError

#: ``(first mcp release not affected, requirement)``: caps applied below that release.
COMPAT_PINS: tuple[tuple[tuple[int, ...], str], ...] = (
    # mcp <= 1.21 imports pydantic._internal._typing_extra.eval_type_backport, which
    # pydantic 2.14 removed: `import mcp` fails.
    ((1, 22), "pydantic<2.14"),
    # mcp 1.8-1.9 with anyio 4.16: when the first Streamable HTTP session ends (DELETE), a
    # ClosedResourceError escapes into the session manager's task group, which dies; every
    # later request gets HTTP 500 ("Task group is not initialized").
    ((1, 10), "anyio<4.16"),
)

_VERSION_RE = re.compile(r"^v?\d+(\.\d+)*[0-9A-Za-z.+!_-]*$")
_EXACT_RE = re.compile(
    r"^\s*mcp\s*(\[[^\]]*\])?\s*===?\s*v?(?P<version>\d+(\.\d+)*[0-9A-Za-z.+!_-]*)\s*$", re.I
)
_DIRECT_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?)\s*@\s*(?P<url>\S+://\S+)$")


def _release(version: str) -> tuple[int, ...]:
    match = re.match(r"v?(\d+(?:\.\d+)*)", version.strip())
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def exact_mcp_version(spec: str) -> str | None:
    """The one ``mcp`` version a spec names (``1.8.0``, ``mcp==1.8.0``), else None."""
    text = spec.strip()
    if _VERSION_RE.match(text):
        return text.removeprefix("v")
    match = _EXACT_RE.match(text)
    return match.group("version") if match else None


def compat_pins(mcp_version: str) -> list[str]:
    """Requirements that keep ``mcp_version`` working against today's dependency releases."""
    release = _release(mcp_version)
    if not release:
        return []
    return sorted(pin for first_ok, pin in COMPAT_PINS if release < first_ok)


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def sdk_requirement(spec: str) -> list[str]:
    """The installer arguments for one SDK spec (no network, no git).

    ``["mcp==1.23.1"]``, ``["mcp>=1.20,<2"]``, ``["mcp @ git+https://..."]``, or
    ``["-e", "/abs/path"]`` for a local checkout.
    """
    text = spec.strip()
    if not text:
        raise UsageError("empty SDK spec: give a version (1.23.1), a requirement, a git URL or a path")
    if _VERSION_RE.match(text):
        return [f"mcp=={text.removeprefix('v')}"]
    direct = _DIRECT_RE.match(text)
    if direct:  # name @ url, spaces or not
        return [f"{direct.group('name')} @ {direct.group('url')}"]
    if "://" in text:
        return [f"mcp @ {text}"]
    local = _local_checkout(text)
    if local is not None:
        return ["-e", str(local)]
    if text.startswith(("/", ".", "~")) or os.sep in text.split("@", 1)[0].split(";", 1)[0]:
        raise UsageError(f"SDK spec {spec!r}: no such directory, and not a version or requirement")
    return [text]


def _local_checkout(text: str) -> Path | None:
    if any(ch in text for ch in "<>=!~;[ ,"):
        return None
    path = Path(text).expanduser()
    if not path.is_dir():
        return None
    path = path.resolve()
    if not any((path / name).is_file() for name in ("pyproject.toml", "setup.py", "setup.cfg")):
        raise UsageError(f"SDK spec {text!r}: {path} has no pyproject.toml or setup.py")
    return path


def _fingerprint_checkout(path: Path) -> str:
    """What of an editable checkout decides its dependencies: its build files' content."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "setup.py", "setup.cfg", "uv.lock"):
        file = path / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()
