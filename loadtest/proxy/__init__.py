"""A fault-injecting proxy for MCP, to prove that silent failures are detected.

``mcp-loadtest proxy`` sits between a client and a server (HTTP: legacy SSE and Streamable
HTTP; stdio: as a wrapper command) and injects faults on a seeded schedule, logging each one
with the classification a checking client should give it (:func:`expectation`).
"""

from loadtest.proxy.faults import (
    FAULT_KINDS,
    Expectation,
    FaultSpec,
    InjectionLog,
    expectation,
    expected_totals,
    parse_faults,
    read_log,
)

__all__ = [
    "FAULT_KINDS",
    "Expectation",
    "FaultSpec",
    "InjectionLog",
    "expectation",
    "expected_totals",
    "parse_faults",
    "read_log",
]
