"""mcp-loadtest tests."""
