"""``check --url`` against something that is not an MCP server: one line and exit 3.

Before, a plain web page gave 17 FAILUREs and exit 1, as if it were a broken MCP server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from loadtest.cli.main import main

PAGE = b"<!doctype html>\n<html><head><title>Welcome</title></head><body>hello</body></html>\n"


class _Page(BaseHTTPRequestHandler):
    """A plain web site: a page for every GET and POST, except /private, which wants a login."""

    def _answer(self) -> None:
        if self.path.startswith("/private"):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="x"')
            body = b"login required"
            content_type = "text/plain"
        else:
            self.send_response(200)
            body = PAGE
            content_type = "text/html; charset=utf-8"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output clean


@pytest.fixture(scope="module")
def web_page() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/", "/ is not an MCP server (POST initialize -> 200 text/html: '<!doctype html> <html><head>"),
        ("/mcp", "/mcp is not an MCP server (POST initialize -> 200 text/html: '<!doctype html>"),
        ("/sse", "/sse is not an MCP server (GET -> 200 text/html: '<!doctype html>"),
        (
            "/private/mcp",
            "/private/mcp refused to start an MCP session (POST initialize -> 401 text/plain: "
            "'login required'); if it wants authorization, give it in target.headers",
        ),
    ],
)
def test_check_against_a_web_page_is_one_line_and_exit_3(
    web_page: str, tmp_path: Path, path: str, message: str
) -> None:
    result = CliRunner().invoke(main, ["check", "--url", web_page + path, "--out", str(tmp_path)])
    assert result.exit_code == 3, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"mcp-loadtest: error: {web_page}{message}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
