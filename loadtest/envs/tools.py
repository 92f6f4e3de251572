"""The programs an environment is built with: uv (else venv and pip), git for URL specs, and
a subprocess runner with deadlines whose failures carry the output's tail."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.core.errors import EnvBuildError

VENV_TIMEOUT_S = 300.0
INSTALL_TIMEOUT_S = 1200.0
PROBE_TIMEOUT_S = 60.0
GIT_TIMEOUT_S = 60.0
#: How long to wait for another process that is building the same environment.
#: A parallel build of the same environment may hold the lock for a whole build.
LOCK_TIMEOUT_S = VENV_TIMEOUT_S + INSTALL_TIMEOUT_S + 60.0
#: Characters of installer output kept for an :class:`EnvBuildError`.
OUTPUT_TAIL_CHARS = 4000

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_PROBE_SCRIPT = (
    "import json, os, platform, sys\n"
    "base = getattr(sys, '_base_executable', None) or sys.executable\n"
    "print(json.dumps({'implementation': platform.python_implementation(),"
    " 'version': platform.python_version(), 'executable': os.path.realpath(base)}))\n"
)

Log = Callable[[str], None]


@dataclass(frozen=True)
class _Python:
    """The base interpreter an environment is created from."""

    command: str
    implementation: str
    version: str
    executable: str


def find_uv() -> str | None:
    """The ``uv`` binary: on ``PATH``, else the one the ``uv`` Python package ships."""
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        path = str(find_uv_bin())
    except (FileNotFoundError, OSError):
        return None
    return path if os.access(path, os.X_OK) else None


def _run(
    argv: Sequence[str],
    *,
    timeout: float,
    what: str,
    spec: str,
    env: Mapping[str, str] | None = None,
    log: Log,
) -> str:
    """Run one installer step; its combined output, or EnvBuildError with the tail of it."""
    log("$ " + " ".join("<script>" if "\n" in arg else shlex.quote(arg) for arg in argv))
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EnvBuildError(spec, f"{_text(exc.output)}\n{what} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise EnvBuildError(spec, f"{what}: cannot run {argv[0]}: {exc}") from None
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        raise EnvBuildError(spec, f"{_text(output)}\n{what} failed (exit {done.returncode})")
    return output


def _text(data: bytes | str | None) -> str:
    """The tail of some installer output, for an error message."""
    if data is None:
        return ""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text[-OUTPUT_TAIL_CHARS:]


def _installer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        GIT_TERMINAL_PROMPT="0",
        UV_NO_PROGRESS="1",
    )
    return env


def _resolve_python(python: str | None, uv: str | None, spec: str, log: Log) -> _Python:
    if python is None:
        base = getattr(sys, "_base_executable", None) or sys.executable
        return _Python(
            command=sys.executable,
            implementation=platform.python_implementation(),
            version=platform.python_version(),
            executable=os.path.realpath(base),
        )
    command: str | None = None
    if uv is not None:
        with contextlib.suppress(EnvBuildError):
            found = (
                _run(
                    [uv, "python", "find", python],
                    timeout=PROBE_TIMEOUT_S,
                    what="uv python find",
                    spec=spec,
                    env=_installer_env(),
                    log=log,
                )
                .strip()
                .splitlines()
            )
            command = found[-1].strip() if found else None
    if command is None:
        candidates = [python, f"python{python}"]
        command = next((c for c in (shutil.which(x) for x in candidates) if c), None)
        if command is None and Path(python).expanduser().is_file():
            command = str(Path(python).expanduser())
    if command is None:
        raise EnvBuildError(spec, f"no Python interpreter found for --python {python!r}")
    probe = _run(
        [command, "-c", _PROBE_SCRIPT], timeout=PROBE_TIMEOUT_S, what="python probe", spec=spec, log=log
    )
    try:
        info = json.loads(probe.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise EnvBuildError(spec, f"{command} did not describe itself:\n{probe}") from None
    return _Python(command, str(info["implementation"]), str(info["version"]), str(info["executable"]))


def _resolve_git(requirement: str, spec: str, log: Log) -> tuple[str, str | None]:
    """Pin a ``mcp @ git+...`` requirement to the commit its ref names now (best effort).

    A branch moves; without this, a cached environment would keep an old commit for ever.
    Returns the (possibly pinned) requirement and the commit, if one was found.
    """
    url = requirement.split(" @ ", 1)[1]
    if not url.startswith("git+"):
        return requirement, None
    parts = urllib.parse.urlsplit(url[len("git+") :])
    repo_path, ref = parts.path, None
    if "@" in parts.path:
        repo_path, ref = parts.path.rsplit("@", 1)
    if ref is not None and _SHA_RE.match(ref):
        return requirement, ref
    git = shutil.which("git")
    if git is None:
        log("git not found: the git spec is cached by its text, not by commit")
        return requirement, None
    repo = urllib.parse.urlunsplit((parts.scheme, parts.netloc, repo_path, "", ""))
    try:
        listing = _run(
            [git, "ls-remote", repo, ref or "HEAD"],
            timeout=GIT_TIMEOUT_S,
            what="git ls-remote",
            spec=spec,
            env=_installer_env(),
            log=log,
        )
    except EnvBuildError as exc:
        log(
            f"could not resolve {ref or 'HEAD'} of {repo}; caching by the spec's text ({exc.output_tail[-200:]})"
        )
        return requirement, None
    refs: dict[str, str] = {}
    for line in listing.splitlines():
        sha, _, name = line.partition("\t")
        if name:
            refs[name.strip()] = sha.strip()
    wanted = ref or "HEAD"
    order = [f"refs/tags/{wanted}^{{}}", wanted, f"refs/heads/{wanted}", f"refs/tags/{wanted}"]
    commit = next((refs[name] for name in order if name in refs), None)
    if commit is None or not _SHA_RE.match(commit):
        return requirement, None
    pinned = urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, f"{repo_path}@{commit}", parts.query, parts.fragment)
    )
    log(f"{wanted} of {repo} is {commit}")
    return f"mcp @ git+{pinned}", commit


def _env_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
