"""Conformance checks from the MCP specification's transport and lifecycle sections.

``mcp-loadtest check`` runs them per transport; ``matrix`` calls :func:`run_checks` per SDK
environment and :func:`diff_checks` to list what changed between versions.
"""

from loadtest.conformance.model import SPEC_VERSIONS, STATUSES, CheckResult, Status
from loadtest.conformance.report import render_checks
from loadtest.conformance.runner import CheckDiff, check_target, diff_checks, run_checks

__all__ = [
    "SPEC_VERSIONS",
    "STATUSES",
    "CheckDiff",
    "CheckResult",
    "Status",
    "check_target",
    "diff_checks",
    "render_checks",
    "run_checks",
]
