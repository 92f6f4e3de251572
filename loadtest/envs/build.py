"""Isolated Python environments, one per ``mcp`` SDK spec, for running targets on other releases.

:func:`ensure_env` turns an SDK spec into a virtual environment with that ``mcp`` installed and
returns it as an :class:`SdkEnv` (its interpreter and the resolved package versions). A spec is

- a version: ``1.23.1`` (installs ``mcp==1.23.1``);
- a requirement: ``mcp==1.23.1``, ``mcp>=1.20,<2``, ``mcp[cli]==1.8.0``;
- a URL: ``git+https://github.com/org/python-sdk@v1.23.1`` (installs ``mcp @ <url>``);
- a local path to an SDK checkout (installed editable, so edits show without a rebuild).

Environments are built with ``uv`` when it can be found (on ``PATH``, or the binary of the
``uv`` Python package), else with ``python -m venv`` and pip. They live in the user cache
(``$MCP_LOADTEST_CACHE/envs``, else ``$XDG_CACHE_HOME/mcp-loadtest/envs``, else
``~/.cache/mcp-loadtest/envs``), one directory per hash of (interpreter, requirements). The file
``complete.json`` (with the resolved versions) is written last, so an interrupted build is
rebuilt rather than reused; a complete environment is reused without running the installer.
Builds of the same environment by parallel processes are serialised with a file lock.

Old ``mcp`` releases break against the newest versions of their own dependencies, which they
did not cap. When a spec names one exact version, :func:`compat_pins` adds the caps it needs
(see :data:`COMPAT_PINS`); pass ``apply_compat_pins=False`` to install without them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loadtest.core.errors import EnvBuildError
from loadtest.envs.specs import (
    _fingerprint_checkout,
    _requirement_name,
    compat_pins,
    exact_mcp_version,
    sdk_requirement,
)
from loadtest.envs.tools import (
    INSTALL_TIMEOUT_S,
    LOCK_TIMEOUT_S,
    PROBE_TIMEOUT_S,
    VENV_TIMEOUT_S,
    Log,
    _env_python,
    _installer_env,
    _Python,
    _resolve_git,
    _resolve_python,
    _run,
    find_uv,
)

CACHE_ENV_VAR = "MCP_LOADTEST_CACHE"
#: Written last into a complete environment; its absence means "build (again)".
MARKER = "complete.json"
#: Part of every cache key: bump it to stop reusing environments built by older code.
LAYOUT_VERSION = 1


_FREEZE_SCRIPT = (
    "import importlib.metadata as m, json, re\n"
    "d = {}\n"
    "for dist in m.distributions():\n"
    "    name = dist.metadata['Name']\n"
    "    if name:\n"
    "        d[re.sub(r'[-_.]+', '-', name).lower()] = dist.version\n"
    "print(json.dumps(d, sort_keys=True))\n"
)


@dataclass(frozen=True)
class SdkEnv:
    """A complete environment with one ``mcp`` release installed."""

    spec: str
    path: Path
    #: The environment's interpreter: run targets with it.
    python: Path
    #: Installed distributions: normalised name (``pydantic-core``) -> version.
    freeze: dict[str, str] = field(hash=False)
    #: What was installed: the SDK requirement, then compatibility pins, then extras.
    requirements: tuple[str, ...] = ()
    #: ``"uv"`` or ``"pip"``.
    installer: str = ""

    @property
    def mcp_version(self) -> str:
        """The installed ``mcp`` version."""
        return self.freeze.get("mcp", "")


def cache_root() -> Path:
    """Where environments are kept: ``$MCP_LOADTEST_CACHE/envs`` or the user cache."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser() / "envs"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mcp-loadtest" / "envs"


@contextlib.contextmanager
def _locked(lock_path: Path, spec: str, log: Log) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        waited = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log(f"waiting for another process that is building {lock_path.stem}")
                    waited = True
                if time.monotonic() > deadline:
                    raise EnvBuildError(spec, f"timed out waiting for the lock {lock_path}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read_marker(path: Path, key: str) -> dict[str, Any] | None:
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("freeze"), dict):
        return None
    if not _env_python(path).exists():
        return None
    return data


def _env_from_marker(spec: str, path: Path, data: Mapping[str, Any]) -> SdkEnv:
    return SdkEnv(
        spec=spec,
        path=path,
        python=_env_python(path),
        freeze={str(k): str(v) for k, v in data["freeze"].items()},
        requirements=tuple(str(r) for r in data.get("requirements", ())),
        installer=str(data.get("installer", "")),
    )


def ensure_env(
    spec: str,
    *,
    python: str | None = None,
    extra: Sequence[str] = (),
    cache_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
    apply_compat_pins: bool = True,
) -> SdkEnv:
    """A complete environment for SDK ``spec``: reused from the cache, or built now.

    ``python`` picks the base interpreter (a path, a command, or a version such as ``3.12``);
    the default is the one running this code. ``extra`` are further requirements installed
    alongside (and part of the cache key). Raises :class:`EnvBuildError` when the installer
    fails or times out, :class:`UsageError` for a spec that is no version, requirement, URL
    or directory. ``apply_compat_pins=False`` skips :func:`compat_pins`.
    """
    say: Log = log if log is not None else (lambda _line: None)
    sdk_args = sdk_requirement(spec)
    uv = find_uv()
    base = _resolve_python(python, uv, spec, say)

    commit: str | None = None
    fingerprint: str | None = None
    if sdk_args[0] == "-e":
        fingerprint = _fingerprint_checkout(Path(sdk_args[1]))
    elif " @ " in sdk_args[0]:
        pinned, commit = _resolve_git(sdk_args[0], spec, say)
        sdk_args = [pinned]

    pins: list[str] = []
    exact = exact_mcp_version(spec)
    if apply_compat_pins and exact is not None:
        named = {_requirement_name(req) for req in extra}
        pins = [pin for pin in compat_pins(exact) if _requirement_name(pin) not in named]
    requirements = [*sdk_args, *pins, *extra]

    key_data = {
        "layout": LAYOUT_VERSION,
        "python": [base.implementation, base.version, base.executable],
        "sdk": sdk_args,
        "pins": pins,
        "extra": sorted(extra),
        "checkout": fingerprint,
    }
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:20]
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    path = root / key

    existing = _read_marker(path, key)
    if existing is not None:
        say(f"reusing environment {path} for {spec!r} (mcp {existing['freeze'].get('mcp', '?')})")
        return _env_from_marker(spec, path, existing)

    with _locked(root / f"{key}.lock", spec, say):
        existing = _read_marker(path, key)  # built by another process while we waited
        if existing is not None:
            say(f"reusing environment {path} for {spec!r} (built meanwhile)")
            return _env_from_marker(spec, path, existing)
        try:
            data = _build(path, key, spec, requirements, base, uv, commit, say)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
    return _env_from_marker(spec, path, data)


def _build(
    path: Path,
    key: str,
    spec: str,
    requirements: Sequence[str],
    base: _Python,
    uv: str | None,
    commit: str | None,
    log: Log,
) -> dict[str, Any]:
    if path.exists():
        log(f"removing incomplete environment {path}")
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    env = _installer_env()
    installer = "uv" if uv is not None else "pip"
    log(f"building environment {path} for {spec!r} with {installer}")
    if uv is not None:
        _run(
            [uv, "venv", "--quiet", "--python", base.command, str(path)],
            timeout=VENV_TIMEOUT_S,
            what="uv venv",
            spec=spec,
            env=env,
            log=log,
        )
        target = _env_python(path)
        log("installing " + " ".join(requirements))
        _run(
            [uv, "pip", "install", "--python", str(target), *requirements],
            timeout=INSTALL_TIMEOUT_S,
            what="uv pip install",
            spec=spec,
            env=env,
            log=log,
        )
    else:
        _run(
            [base.command, "-m", "venv", str(path)],
            timeout=VENV_TIMEOUT_S,
            what="python -m venv",
            spec=spec,
            env=env,
            log=log,
        )
        target = _env_python(path)
        log("installing " + " ".join(requirements))
        _run(
            [str(target), "-m", "pip", "install", "--quiet", *requirements],
            timeout=INSTALL_TIMEOUT_S,
            what="pip install",
            spec=spec,
            env=env,
            log=log,
        )

    listing = _run(
        [str(target), "-c", _FREEZE_SCRIPT],
        timeout=PROBE_TIMEOUT_S,
        what="listing packages",
        spec=spec,
        env=env,
        log=log,
    )
    try:
        freeze = json.loads(listing.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise EnvBuildError(spec, f"could not list the installed packages:\n{listing}") from None
    if "mcp" not in freeze:
        raise EnvBuildError(
            spec, f"the install finished but no 'mcp' distribution is present: {sorted(freeze)}"
        )

    data: dict[str, Any] = {
        "key": key,
        "spec": spec,
        "requirements": list(requirements),
        "installer": installer,
        "python": {"implementation": base.implementation, "version": base.version, "base": base.executable},
        "git_commit": commit,
        "freeze": freeze,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    partial = path / (MARKER + ".partial")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path / MARKER)
    log(f"environment ready: mcp {freeze['mcp']} in {path}")
    return data
