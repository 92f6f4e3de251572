"""Errors a user can cause or meet, each with the exit code the CLI gives it.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; no traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

P = ParamSpec("P")
R = TypeVar("R")


class LoadtestError(Exception):
    """A failure the user should read as one line; exit code 3 (run could not be carried out)."""

    exit_code: int = 3


class UsageError(LoadtestError):
    """Bad input: a malformed scenario, an unknown option value. Exit code 2."""

    exit_code = 2


class TargetError(LoadtestError):
    """The target could not be started or reached. Exit code 3."""


class EnvBuildError(LoadtestError):
    """An SDK environment could not be built; carries the tail of the installer's output."""

    def __init__(self, spec: str, output_tail: str) -> None:
        self.spec = spec
        self.output_tail = output_tail
        tail = output_tail.strip().splitlines()[-12:]
        super().__init__(f"could not build an environment for SDK spec {spec!r}:\n  " + "\n  ".join(tail))


def friendly(func: Callable[P, R]) -> Callable[P, R]:
    """For every command: our own errors become one line on stderr and their exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except LoadtestError as exc:
            click.echo(f"mcp-loadtest: error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper
