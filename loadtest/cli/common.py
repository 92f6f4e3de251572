"""What the commands share: exit codes, scenario overrides from flags, terminal style, notes."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from loadtest.core.errors import UsageError
from loadtest.present.terminal import Style
from loadtest.scenario import Scenario
from loadtest.scenario.thresholds import vocabulary_notes

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RUN_FAILED",
    "EXIT_THRESHOLD",
    "EXIT_USAGE",
    "no_sdk_workers",
    "overrides",
    "say_notes",
    "style",
]

EXIT_OK, EXIT_THRESHOLD, EXIT_USAGE, EXIT_RUN_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def overrides(
    transports: tuple[str, ...],
    target_cmd: str | None,
    url: str | None,
    sessions: int | None,
    duration: str | None,
    requests: int | None,
    rate: str | None,
) -> dict[str, Any]:
    """Command-line flags as scenario overrides (dotted keys), for load_scenario."""
    overrides: dict[str, Any] = {}
    if transports:
        overrides["transports"] = (
            ["stdio", "sse", "http"] if "all" in transports else list(dict.fromkeys(transports))
        )
    for key, value in (
        ("target.command", target_cmd),
        ("target.url", url),
        ("workload.sessions", sessions),
        ("workload.duration", duration),
        ("workload.requests", requests),
        ("workload.rate", rate),
    ):
        if value is not None:
            overrides[key] = value
    return overrides


def style() -> Style:
    return Style(colour=sys.stdout.isatty() and "NO_COLOR" not in os.environ)


def no_sdk_workers(kind: str, workers: int) -> None:
    if kind == "sdk" and workers > 1:
        raise UsageError(
            "--workers splits the built-in client over processes; the SDK client has --client-workers"
        )


def say_notes(scenario: Scenario) -> None:
    """Notes about the scenario's thresholds (a metric whose meaning changed), on stderr."""
    for note in vocabulary_notes(scenario.thresholds):
        click.echo(f"note: {scenario.source or 'scenario'}: {note}", err=True)
