"""Scenario files: the typed model, request templates, loading and validation.

The public API is what this package re-exports; its modules are the implementation:
``model`` (the typed scenario), ``templates`` (``{nonce}``/``{seed}``), ``load`` (TOML,
command-line overrides), ``validate`` and ``ops`` (per-section checks), ``fields`` (generic
value checks), ``thresholds`` (pass/fail rules).
"""

from __future__ import annotations

from loadtest.scenario.fields import BUNDLED_DEFAULT, FROM_COMMAND_LINE
from loadtest.scenario.load import load_scenario, scenario_from_data
from loadtest.scenario.model import (
    REDACTED,
    TRANSPORTS,
    Health,
    Scenario,
    Soak,
    Stage,
    Target,
    Workload,
)
from loadtest.scenario.op import LIST_KEYS, METHODS, Expect, Op

__all__ = [
    "BUNDLED_DEFAULT",
    "FROM_COMMAND_LINE",
    "LIST_KEYS",
    "METHODS",
    "REDACTED",
    "TRANSPORTS",
    "Expect",
    "Health",
    "Op",
    "Scenario",
    "Soak",
    "Stage",
    "Target",
    "Workload",
    "load_scenario",
    "scenario_from_data",
]
