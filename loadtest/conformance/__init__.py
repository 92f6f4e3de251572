"""Conformance checks from the MCP specification's transport and lifecycle sections.

``mcp-loadtest check`` runs them per transport; ``matrix`` runs them (:mod:`loadtest.run.conformance`) per SDK
environment and :func:`diff_checks` to list what changed between versions.
"""

from loadtest.conformance.diff import CheckDiff, diff_checks
from loadtest.conformance.model import SPEC_VERSIONS, STATUSES, CheckResult, Status
from loadtest.conformance.report import render_checks

__all__ = [
    "SPEC_VERSIONS",
    "STATUSES",
    "CheckDiff",
    "CheckResult",
    "Status",
    "diff_checks",
    "render_checks",
]
