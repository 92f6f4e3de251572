"""What ``compare`` compares: sides made of runs, read from run directories and groups.

A side is one or more runs of the same build. A path is a run directory (it holds run.json),
a run.json file, or a group: a directory whose sub-directories are runs (one ``matrix`` side,
or any directory of repeated runs). A ``matrix`` directory given alone stands for both sides.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from loadtest.analysis.compare.intervals import read_intervals
from loadtest.analysis.compare.stats import Bucketed
from loadtest.core.errors import LoadtestError, UsageError
from loadtest.core.names import MATRIX_FILE
from loadtest.core.units import format_latency_us
from loadtest.results.document import RUN_FILE, load_run

__all__ = ["Run", "Side", "comparability_problems", "load_side", "matrix_sides"]


@dataclass
class Run:
    """One run: its document and, read on demand, its per-second intervals."""

    path: Path
    document: Mapping[str, Any]
    name: str
    _intervals: dict[str, dict[str, list[Bucketed]]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def transports(self) -> Mapping[str, Any]:
        transports: Mapping[str, Any] = self.document.get("transports") or {}
        return transports

    def intervals(self, transport: str) -> dict[str, list[Bucketed]]:
        """Per op tag, the run's corrected per-second intervals on ``transport`` ({} if no log)."""
        cache = self._intervals
        if transport not in cache:
            cache[transport] = read_intervals(self.path / f"{transport}.hlog")
        return cache[transport]

    def meta(self, key: str) -> Any:
        return (self.document.get("meta") or {}).get(key)

    @property
    def sdk(self) -> str | None:
        target = self.meta("target") or {}
        sdk = target.get("sdk") or {}
        version = sdk.get("version")
        return f"{sdk.get('name', 'mcp')} {version}" if version else None

    @property
    def client(self) -> str | None:
        """``built-in`` or ``mcp 2.3.0 SDK``: who made the calls (None: not recorded)."""
        meta = self.meta("client")
        if not isinstance(meta, Mapping):
            return None
        return f"mcp {meta.get('mcp')} SDK" if meta.get("kind") == "sdk" else "built-in"


@dataclass
class Side:
    """One side of a comparison: a label (what the user typed) and its runs."""

    label: str
    runs: list[Run]
    #: Runs left out, with why (a run that failed to start, an interrupted one).
    skipped: list[str] = field(default_factory=list)

    @property
    def sdks(self) -> list[str]:
        return sorted({run.sdk for run in self.runs if run.sdk})

    @property
    def clients(self) -> list[str]:
        """Which client made the calls, with its CPU per call per transport (median over runs).

        Empty for runs from before the client was recorded (``meta.client``).
        """
        groups: dict[str, dict[str, list[float]]] = {}
        for run in self.runs:
            name = run.client
            if name is None:
                continue
            per_transport = groups.setdefault(name, {})
            for transport, section in run.transports.items():
                cost = (section.get("client") or {}).get("cpu_per_call_us")
                if isinstance(cost, (int, float)):
                    per_transport.setdefault(transport, []).append(float(cost))
        out = []
        for name, per_transport in groups.items():
            costs = ", ".join(
                f"{t} {format_latency_us(statistics.median(v))}" for t, v in per_transport.items()
            )
            out.append(f"{name}, CPU/call {costs}" if costs else name)
        return out

    @property
    def checks(self) -> list[Mapping[str, Any]] | None:
        """The conformance checks of the first run that has them."""
        for run in self.runs:
            checks = run.document.get("checks")
            if checks:
                return list(checks)
        return None


def _run_dirs(directory: Path) -> list[Path]:
    found = sorted(p for p in directory.iterdir() if p.is_dir() and (p / RUN_FILE).is_file())
    if found:
        return found
    # A matrix side holds run-NN directories; one level further down is still one group.
    return sorted(
        q
        for p in directory.iterdir()
        if p.is_dir()
        for q in p.iterdir()
        if q.is_dir() and (q / RUN_FILE).is_file()
    )


def load_side(paths: Sequence[Path], label: str | None = None) -> Side:
    """The runs at ``paths`` (run directories, run.json files or groups) as one side."""
    if not paths:
        raise UsageError("a side of the comparison has no paths")
    runs: list[Run] = []
    skipped: list[str] = []
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path}: no such file or directory")
        if path.is_file() or (path / RUN_FILE).is_file():
            members = [path]
        elif (path / MATRIX_FILE).is_file():
            raise UsageError(
                f"{path}: a matrix directory holds both sides; give it alone (compare {path}) "
                "or give two of its SDK directories"
            )
        else:
            members = _run_dirs(path)
            if not members:
                raise UsageError(
                    f"{path}: no {RUN_FILE} there nor in its sub-directories; expected a run or a group of runs"
                )
        for member in members:
            document = load_run(member)
            run_path = member if member.is_dir() else member.parent
            name = (
                str(member.relative_to(path))
                if member != path
                else (path.name if path.is_dir() else path.parent.name)
            )
            if document.get("error"):
                skipped.append(f"{run_path}: {document['error']}")
                continue
            runs.append(Run(run_path, document, name if len(paths) == 1 else str(run_path)))
    if not runs:
        raise LoadtestError(f"{', '.join(map(str, paths))}: every run failed; nothing to compare")
    return Side(label or " ".join(str(p) for p in paths), runs, skipped)


def matrix_sides(directory: Path) -> tuple[Side, Side]:
    """The two SDK sides of a ``matrix`` directory (which must have exactly two usable ones)."""
    try:
        plan = orjson.loads((directory / MATRIX_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise UsageError(f"{directory / MATRIX_FILE}: cannot read ({exc})") from None
    usable = [side for side in plan.get("sides", []) if side.get("runs")]
    if len(usable) != 2:
        labels = ", ".join(str(side.get("label")) for side in usable) or "none"
        raise UsageError(
            f"{directory}: a matrix with {len(usable)} usable SDK sides ({labels}); "
            "compare two of its SDK directories explicitly"
        )
    sides = []
    for side in usable:
        sub = directory / str(side["label"])
        loaded = load_side([sub], label=f"{side['label']} ({side.get('spec')})")
        sides.append(loaded)
    return sides[0], sides[1]


def comparability_problems(a: Side, b: Side) -> list[str]:
    """Why these runs should not be put side by side (empty when they may be)."""
    problems: list[str] = []
    for key, what in (("scenario_hash", "scenario hashes"), ("machine_fingerprint", "machine fingerprints")):
        values: dict[str, list[str]] = {}
        for side in (a, b):
            for run in side.runs:
                values.setdefault(str(run.meta(key)), []).append(str(run.path))
        if len(values) > 1:
            detail = "; ".join(
                f"{value} in {paths[0]}" + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else "")
                for value, paths in sorted(values.items())
            )
            problems.append(f"different {what}: {detail}")
    return problems
