"""Isolated Python environments, one per ``mcp`` SDK spec (see :mod:`loadtest.envs.build`)."""

from loadtest.envs.build import MARKER, SdkEnv, cache_root, ensure_env
from loadtest.envs.specs import COMPAT_PINS, compat_pins, exact_mcp_version, sdk_requirement
from loadtest.envs.tools import find_uv

__all__ = [
    "COMPAT_PINS",
    "MARKER",
    "SdkEnv",
    "cache_root",
    "compat_pins",
    "ensure_env",
    "exact_mcp_version",
    "find_uv",
    "sdk_requirement",
]
