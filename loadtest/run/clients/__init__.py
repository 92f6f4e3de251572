"""Who makes the calls: the built-in wire-level client, or an ``mcp`` SDK's own client.

``config`` chooses (``--client``, ``--client-sdk``); ``sdk_pool`` runs the SDK client's worker
processes for the driver; ``sdk_worker`` is the standalone script those processes run.
"""

from loadtest.run.clients.config import BUILTIN, ClientConfig, resolve_client, sdk_client_from_env

__all__ = ["BUILTIN", "ClientConfig", "resolve_client", "sdk_client_from_env"]
