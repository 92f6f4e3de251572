"""The shared vocabulary: one definition, used by every layer that names a transport."""

from __future__ import annotations

import inspect

import pytest

from loadtest.core import names
from loadtest.protocol import session
from loadtest.protocol import transports as wire
from loadtest.run.targets import reference
from loadtest.scenario import load_scenario, model


def test_every_layer_uses_the_one_list_of_transports() -> None:
    # The same objects, not equal copies: a transport added in names reaches every layer.
    assert model.TRANSPORTS is names.TRANSPORTS
    assert wire.TRANSPORTS is names.TRANSPORTS
    # The scenario's default deadline and a session's are the one default.
    assert load_scenario(None).workload.request_timeout == names.DEFAULT_REQUEST_TIMEOUT_S
    opened = inspect.signature(session.open_session).parameters["request_timeout"]
    assert opened.default == names.DEFAULT_REQUEST_TIMEOUT_S
    assert set(names.SERVER_TRANSPORT_NAMES) == set(names.TRANSPORTS)
    assert set(names.DEFAULT_PATHS) == set(names.TRANSPORTS) - {"stdio"}


@pytest.mark.parametrize(
    ("given", "ours"),
    [("stdio", "stdio"), ("sse", "sse"), ("http", "http"), ("streamable-http", "http"), ("websocket", None)],
)
def test_transport_name_accepts_either_spelling(given: str, ours: str | None) -> None:
    assert names.transport_name(given) == ours


def test_target_commands_name_the_transport_as_servers_do() -> None:
    argv = reference.reference_command("http", port=8123)
    assert argv[argv.index("--transport") + 1] == names.SERVER_TRANSPORT_NAMES["http"] == "streamable-http"
