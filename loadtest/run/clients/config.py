"""Which client makes the calls: the built-in wire-level one, or an ``mcp`` SDK's own.

:func:`resolve_client` turns the command line's choice (``--client``, ``--client-sdk``) into a
:class:`ClientConfig`; the run records :meth:`ClientConfig.meta` as ``meta.client``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from loadtest.core.errors import UsageError
from loadtest.envs import SdkEnv, ensure_env

ClientKind = Literal["builtin", "sdk"]
CLIENT_KINDS: tuple[ClientKind, ...] = ("builtin", "sdk")
#: Worker processes per transport in SDK-client mode: one, like the built-in generator's one
#: event loop, so that on a 2-core machine the client has one core and the server the other.
DEFAULT_WORKERS = 1


@dataclass(frozen=True)
class ClientConfig:
    """The client under which a run's calls are made."""

    kind: ClientKind = "builtin"
    #: sdk: the interpreter of the environment whose ``mcp`` client makes the calls.
    python: str = sys.executable
    #: sdk: the ``mcp`` version of that environment.
    mcp_version: str | None = None
    #: sdk: the SDK spec it was built from (None: the tester's own environment).
    spec: str | None = None
    #: sdk: worker processes per transport; sessions are spread over them.
    workers: int = DEFAULT_WORKERS
    freeze: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_sdk(self) -> bool:
        return self.kind == "sdk"

    def meta(self) -> dict[str, Any]:
        """``meta.client`` of the results: which side of the wire the run's client was."""
        if not self.is_sdk:
            return {"kind": "builtin"}
        out: dict[str, Any] = {
            "kind": "sdk",
            "name": "mcp",
            "mcp": self.mcp_version,
            "spec": self.spec,
            "python": self.python,
            "workers": self.workers,
        }
        if self.freeze:
            out["freeze"] = dict(self.freeze)
        return out

    def describe(self) -> str:
        """``the built-in client`` or ``the mcp 2.3.0 SDK client``."""
        return f"the mcp {self.mcp_version} SDK client" if self.is_sdk else "the built-in client"


BUILTIN = ClientConfig()


def sdk_client_from_env(env: SdkEnv, workers: int = DEFAULT_WORKERS) -> ClientConfig:
    """The SDK client of a built environment (see :func:`loadtest.envs.ensure_env`)."""
    return ClientConfig("sdk", str(env.python), env.mcp_version, env.spec, workers, env.freeze)


def resolve_client(
    kind: ClientKind,
    spec: str | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
    python: str | None = None,
    cache_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> ClientConfig:
    """The client for ``--client KIND [--client-sdk SPEC]``.

    ``sdk`` without a spec is the ``mcp`` installed with the tester; with one, the cached
    environment for that spec (built now if needed; :class:`~loadtest.core.errors.EnvBuildError`
    if it cannot be).
    """
    if kind == "builtin":
        if spec is not None:
            raise UsageError("--client-sdk needs --client sdk (or no --client at all)")
        return BUILTIN
    if spec is None:
        try:
            installed = version("mcp")
        except PackageNotFoundError:
            raise UsageError(
                "--client sdk: no mcp is installed with mcp-loadtest; name one with --client-sdk SPEC"
            ) from None
        return ClientConfig("sdk", sys.executable, installed, None, workers)
    env = ensure_env(spec, python=python, cache_dir=cache_dir, log=log)
    return sdk_client_from_env(env, workers)
