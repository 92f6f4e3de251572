"""mcp-loadtest: a transport-conformance load tester for MCP servers.

The public API is what this module re-exports; everything else may change.
"""

from __future__ import annotations

__version__ = "0.1.0"
