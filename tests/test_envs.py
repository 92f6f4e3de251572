"""loadtest.envs: SDK environments, built with the real installer (uv, else pip) from PyPI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from loadtest.core.errors import EnvBuildError, LoadtestError, UsageError
from loadtest.envs import SdkEnv, ensure_env, specs, tools
from loadtest.envs import build as envs
from loadtest.run.targets.reference import REFERENCE_SERVER

#: The oldest release the reference server supports; it needs compatibility pins today.
OLD_SDK = "1.8.0"
#: Building an environment downloads packages (pip without uv takes ~30 s).
BUILD_TIMEOUT = pytest.mark.timeout(900)


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This file's own cache: its tests watch a first build happen, so no one else may build first."""
    return tmp_path_factory.mktemp("sdk-envs-under-test")


@pytest.fixture(scope="session")
def old_env(env_cache: Path) -> tuple[SdkEnv, list[str]]:
    """The environment for OLD_SDK, built once per test session, and its build log."""
    lines: list[str] = []
    env = ensure_env(OLD_SDK, cache_dir=env_cache, log=lines.append)
    return env, lines


# --- building and reusing (network) ---


@BUILD_TIMEOUT
def test_old_release_env_is_built(old_env: tuple[SdkEnv, list[str]], env_cache: Path) -> None:
    env, lines = old_env
    assert env.mcp_version == OLD_SDK
    assert env.python.is_file()
    assert env.path.parent == env_cache
    assert env.requirements[0] == f"mcp=={OLD_SDK}"
    # mcp 1.8.0 needs these caps against today's pydantic and anyio.
    assert set(env.requirements[1:]) == {"pydantic<2.14", "anyio<4.16"}
    assert not env.freeze["pydantic"].startswith("2.14")
    assert any(line.startswith("installing ") for line in lines)
    marker = json.loads((env.path / envs.MARKER).read_text(encoding="utf-8"))
    assert marker["freeze"] == env.freeze


@BUILD_TIMEOUT
def test_complete_env_is_reused_without_installer(
    old_env: tuple[SdkEnv, list[str]], env_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _ = old_env
    marker = env.path / envs.MARKER
    before = marker.stat().st_mtime_ns

    def no_subprocess(*args: Any, **kwargs: Any) -> str:
        raise AssertionError(f"the installer ran for a complete environment: {args}")

    monkeypatch.setattr(tools, "_run", no_subprocess)
    monkeypatch.setattr(envs, "_run", no_subprocess)
    lines: list[str] = []
    # The same SDK, spelled as a requirement: the same environment.
    again = ensure_env(f"mcp=={OLD_SDK}", cache_dir=env_cache, log=lines.append)
    assert again.path == env.path
    assert again.freeze == env.freeze
    assert again.spec == f"mcp=={OLD_SDK}"
    assert any(line.startswith("reusing ") for line in lines), lines
    assert not any(line.startswith(("installing ", "building ")) for line in lines), lines
    assert marker.stat().st_mtime_ns == before


@BUILD_TIMEOUT
def test_reference_server_runs_in_old_env(old_env: tuple[SdkEnv, list[str]]) -> None:
    """The pinned 1.8.0 environment imports mcp and serves the reference server over stdio."""
    env, _ = old_env
    proc = subprocess.Popen(
        [str(env.python), str(REFERENCE_SERVER), "--transport", "stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def call(message: dict[str, Any]) -> dict[str, Any] | None:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        proc.stdin.flush()
        if "id" not in message:
            return None
        line = proc.stdout.readline()
        assert line, proc.stderr.read().decode() if proc.stderr else "server exited"
        answer: dict[str, Any] = json.loads(line)
        return answer

    try:
        init = call(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2024-11-05",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "0"},
                },
            }
        )
        assert init is not None
        assert init["result"]["serverInfo"]["name"] == "mcp-loadtest-reference"
        call({"jsonrpc": "2.0", "method": "notifications/initialized"})
        echo = call(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "hi"}},
            }
        )
        assert echo is not None
        assert echo["result"]["content"] == [{"type": "text", "text": "hi"}]
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@BUILD_TIMEOUT
def test_interrupted_build_is_rebuilt(tmp_path: Path) -> None:
    """An environment without its completion marker (a build that died) is rebuilt, not reused."""
    env = ensure_env(OLD_SDK, cache_dir=tmp_path)
    (env.path / envs.MARKER).unlink()
    lines: list[str] = []
    again = ensure_env(OLD_SDK, cache_dir=tmp_path, log=lines.append)
    assert again.path == env.path
    assert (again.path / envs.MARKER).is_file()
    assert any(line.startswith("removing incomplete environment") for line in lines), lines
    assert any(line.startswith("installing ") for line in lines), lines
    assert again.mcp_version == OLD_SDK


@BUILD_TIMEOUT
@pytest.mark.slow
def test_pip_fallback_without_uv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without uv the environment is made with ``python -m venv`` and pip."""
    monkeypatch.setattr(envs, "find_uv", lambda: None)
    lines: list[str] = []
    env = ensure_env(OLD_SDK, cache_dir=tmp_path, log=lines.append)
    assert env.installer == "pip"
    assert env.mcp_version == OLD_SDK
    assert any(" -m venv " in line for line in lines), lines
    assert "pip" in env.freeze


@BUILD_TIMEOUT
def test_nonexistent_version_raises_env_build_error(env_cache: Path) -> None:
    spec = "mcp==0.0.999"
    with pytest.raises(EnvBuildError) as caught:
        ensure_env(spec, cache_dir=env_cache)
    error = caught.value
    assert isinstance(error, LoadtestError)
    assert error.exit_code == 3
    assert error.spec == spec
    assert spec in str(error)
    assert "0.0.999" in error.output_tail
    # Nothing half-built is left behind: every directory in the cache is a complete environment.
    assert all(
        path.name.endswith(".lock") or (path / envs.MARKER).exists() for path in env_cache.iterdir()
    ), sorted(p.name for p in env_cache.iterdir())


# --- specs, pins and the cache location (no network) ---


@pytest.mark.parametrize(
    ("spec", "args"),
    [
        ("1.23.1", ["mcp==1.23.1"]),
        ("v1.8.0", ["mcp==1.8.0"]),
        ("2.0.0rc1", ["mcp==2.0.0rc1"]),
        ("mcp==1.23.1", ["mcp==1.23.1"]),
        ("mcp>=1.20,<2", ["mcp>=1.20,<2"]),
        ("mcp[cli]==1.8.0", ["mcp[cli]==1.8.0"]),
        ("git+https://example.org/sdk.git@v1.2", ["mcp @ git+https://example.org/sdk.git@v1.2"]),
        ("mcp@git+https://example.org/sdk.git", ["mcp @ git+https://example.org/sdk.git"]),
    ],
)
def test_sdk_requirement(spec: str, args: list[str]) -> None:
    assert specs.sdk_requirement(spec) == args


def test_sdk_requirement_local_checkout(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'mcp'\n", encoding="utf-8")
    assert specs.sdk_requirement(str(tmp_path)) == ["-e", str(tmp_path.resolve())]


@pytest.mark.parametrize("spec", ["", "   ", "./no/such/checkout", "/no/such/checkout"])
def test_bad_spec_is_a_usage_error(spec: str) -> None:
    with pytest.raises(UsageError):
        specs.sdk_requirement(spec)


def test_dir_without_project_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="pyproject"):
        specs.sdk_requirement(str(tmp_path))


@pytest.mark.parametrize(
    ("version", "pins"),
    [
        ("1.8.0", ["anyio<4.16", "pydantic<2.14"]),
        ("1.9.4", ["anyio<4.16", "pydantic<2.14"]),
        ("1.10.0", ["pydantic<2.14"]),
        ("1.21.2", ["pydantic<2.14"]),
        ("1.22.0", []),
        ("1.30.0", []),
        ("2.3.0", []),
        ("", []),
    ],
)
def test_compat_pins(version: str, pins: list[str]) -> None:
    assert specs.compat_pins(version) == pins


@pytest.mark.parametrize(
    ("spec", "version"),
    [("1.8.0", "1.8.0"), ("mcp==1.8.0", "1.8.0"), ("mcp[cli] == 1.9.4", "1.9.4"), ("mcp>=1.8", None)],
)
def test_exact_mcp_version(spec: str, version: str | None) -> None:
    assert specs.exact_mcp_version(spec) == version


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"MCP_LOADTEST_CACHE": "/c/override", "XDG_CACHE_HOME": "/c/xdg"}, Path("/c/override/envs")),
        ({"XDG_CACHE_HOME": "/c/xdg"}, Path("/c/xdg/mcp-loadtest/envs")),
        ({}, Path.home() / ".cache" / "mcp-loadtest" / "envs"),
    ],
)
def test_cache_root(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], expected: Path) -> None:
    for name in ("MCP_LOADTEST_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert envs.cache_root() == expected


def test_explicit_extra_overrides_compat_pin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A caller's own requirement for a pinned package replaces the automatic pin."""
    seen: list[list[str]] = []

    def fake_build(path: Path, key: str, spec: str, requirements: list[str], *rest: Any) -> dict[str, Any]:
        seen.append(list(requirements))
        return {"freeze": {"mcp": OLD_SDK}, "requirements": requirements}

    monkeypatch.setattr(envs, "_build", fake_build)
    ensure_env(OLD_SDK, extra=["pydantic==2.11.4"], cache_dir=tmp_path)
    ensure_env(OLD_SDK, cache_dir=tmp_path, apply_compat_pins=False)
    assert seen == [["mcp==1.8.0", "anyio<4.16", "pydantic==2.11.4"], ["mcp==1.8.0"]]
