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
from loadtest.scenario.identity import TARGET_KEYS, differing_keys, workload_of

__all__ = [
    "MUST_MATCH",
    "TARGET_DIFFERS",
    "WARN_ONLY",
    "Run",
    "Side",
    "comparability_problems",
    "comparability_warnings",
    "load_side",
    "matrix_sides",
    "mismatches",
    "split_target",
]


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
    def partial(self) -> str | None:
        """Why this run is not a whole run (interrupted, or rebuilt after a kill), or None."""
        note = self.document.get("partial")
        if note:
            return str(note)
        return "partial" if self.meta("partial") else None

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


#: Facts about the machine that must match for runs to be compared (meta key, what it is).
MUST_MATCH = (
    ("cpu_model", "CPU model"),
    ("cores", "cores"),
    ("python_implementation", "Python implementation"),
    ("python_minor", "Python version"),
)
#: Facts that may change under a comparison without making it meaningless, shown as warnings:
#: hosted CI runners update their kernels between nights.
WARN_ONLY = (("os", "OS and kernel release"), ("tool_version", "mcp-loadtest version"))


def _facts(run: Run) -> dict[str, Any]:
    """The machine facts of ``run``, read from any run.json version."""
    meta = run.document.get("meta") or {}
    python = str(meta.get("python") or "")
    return {
        "cpu_model": meta.get("cpu_model"),
        "cores": meta.get("cores"),
        "python_implementation": meta.get("python_implementation"),
        "python_minor": ".".join(python.split(".")[:2]) or None,
        # platform.platform(): the kernel release and C library, in every run.json version.
        "os": meta.get("os"),
        "tool_version": (meta.get("tool") or {}).get("version"),
        "machine_fingerprint": meta.get("machine_fingerprint"),
    }


def _has_facts(run: Run) -> bool:
    return all(_facts(run)[key] is not None for key, _ in MUST_MATCH[:2])


def _workload(run: Run) -> Mapping[str, Any] | None:
    scenario = run.document.get("scenario")
    return workload_of(scenario) if isinstance(scenario, Mapping) else None


def _short(value: Any, skip: int = 0) -> str:
    """``value`` for one line; ``skip`` leading characters of a string (shared with the other
    value) become ``...``, so that two long commands show where they differ."""
    if isinstance(value, str) and skip:
        value = "..." + value[skip:]
    text = repr(value) if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{value:g}"
    return text if len(text) <= 80 else text[:77] + "..."


def _shared_prefix(x: Any, y: Any) -> int:
    """How much of two strings' common start to leave out: up to a separator, and only if long."""
    if not isinstance(x, str) or not isinstance(y, str):
        return 0
    # Character by character on purpose: these are commands and URLs, not only paths.
    n = next((i for i, (c, d) in enumerate(zip(x, y, strict=False)) if c != d), min(len(x), len(y)))
    cut = max(x.rfind("/", 0, n), x.rfind(" ", 0, n)) + 1
    return cut if cut > 20 else 0


def _describe(key: str, by_value: Mapping[str, list[str]]) -> str:
    """``workload.rate: 60 in a/run-01 (+3 more), 80 in b/run-01 (+3 more)``."""
    return f"{key}: " + ", ".join(
        f"{value} in {paths[0]}" + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else "")
        for value, paths in by_value.items()
    )


def _collect(runs: Sequence[Run], values: Any) -> dict[str, dict[str, list[str]]]:
    """Per differing key, the runs having each value (``values(reference, run)`` gives the diffs)."""
    reference = runs[0]
    keyed: dict[str, dict[str, list[str]]] = {}
    for run in runs[1:]:
        for key, (mine, theirs) in values(reference, run).items():
            slot = keyed.setdefault(key, {})
            skip = _shared_prefix(mine, theirs)
            first = slot.setdefault(_short(mine, skip), [])
            if str(reference.path) not in first:
                first.append(str(reference.path))
            slot.setdefault(_short(theirs, skip), []).append(str(run.path))
    return keyed


def mismatches(reference: Run, run: Run) -> dict[str, tuple[Any, Any]]:
    """What stops ``run`` from being compared with ``reference``, by key (empty: nothing).

    Keys are the workload's (``workload.duration``, ``ops[0].arguments.text``...) and the
    machine facts that must match (``cpu_model``...). Runs that lack a stored scenario or
    machine facts (hand-made documents) fall back to their hashes and fingerprints.
    """
    out: dict[str, tuple[Any, Any]] = {}
    mine, theirs = _workload(reference), _workload(run)
    if mine is not None and theirs is not None:
        out.update(differing_keys(mine, theirs))
    else:
        for key in ("workload_hash", "scenario_hash"):
            x, y = reference.meta(key), run.meta(key)
            if x is not None and y is not None:
                if x != y:
                    out[key] = (x, y)
                break
    if _has_facts(reference) and _has_facts(run):
        a, b = _facts(reference), _facts(run)
        out.update({key: (a[key], b[key]) for key, _ in MUST_MATCH if a[key] != b[key]})
    elif reference.meta("machine_fingerprint") != run.meta("machine_fingerprint"):
        out["machine_fingerprint"] = (reference.meta("machine_fingerprint"), run.meta("machine_fingerprint"))
    return out


def comparability_problems(a: Side, b: Side) -> list[str]:
    """Why these runs should not be put side by side (empty when they may be).

    Every reason names the keys that differ and where: ``different workloads: workload.rate:
    60 in a/run-01, 80 in b/run-01``; ``different machines: cores: 2 in ..., 4 in ...``.
    """
    runs = [*a.runs, *b.runs]
    keyed = _collect(runs, mismatches)
    facts = {key for key, _ in MUST_MATCH} | {"machine_fingerprint"}
    problems = []
    workload = [_describe(k, v) for k, v in keyed.items() if k not in facts and not k.endswith("_hash")]
    hashes = [_describe(k, v) for k, v in keyed.items() if k.endswith("_hash")]
    machine = [_describe(k, v) for k, v in keyed.items() if k in facts]
    if workload:
        problems.append("different workloads: " + "; ".join(workload))
    if hashes:
        problems.append("different scenario hashes: " + "; ".join(hashes))
    if machine:
        problems.append("different machines: " + "; ".join(machine))
    return problems


#: How a warning about where the target lives starts: reports put it in their header.
TARGET_DIFFERS = "the target differs: "


def split_target(warnings: Sequence[str]) -> tuple[list[str], list[str]]:
    """``warnings`` as (what differs about the target, for the header; the rest)."""
    target = [w.removeprefix(TARGET_DIFFERS) for w in warnings if w.startswith(TARGET_DIFFERS)]
    return target, [w for w in warnings if not w.startswith(TARGET_DIFFERS)]


def comparability_warnings(a: Side, b: Side) -> list[str]:
    """Differences that do not stop a comparison but belong in its header.

    Where the target lives (``target.command``, ``target.url``, the reference server's knobs):
    an A/B of two builds differs there by design. And machine facts that only warn (kernel,
    tool version).
    """
    runs = [*a.runs, *b.runs]

    def target(reference: Run, run: Run) -> dict[str, tuple[Any, Any]]:
        x, y = (r.document.get("scenario") or {} for r in (reference, run))
        return differing_keys(
            {k: x.get(k) for k in TARGET_KEYS if k in x},
            {k: y.get(k) for k in TARGET_KEYS if k in y},
            skip_absent=True,
        )

    def soft(reference: Run, run: Run) -> dict[str, tuple[Any, Any]]:
        x, y = _facts(reference), _facts(run)
        return {
            key: (x[key], y[key]) for key, _ in WARN_ONLY if None not in (x[key], y[key]) and x[key] != y[key]
        }

    # A run stopped early measured less than it was asked to: flagged wherever it is compared.
    out = [f"{run.path} is a partial run ({run.partial})" for run in runs if run.partial]
    targets = _collect(runs, target)
    if targets:
        out.append(TARGET_DIFFERS + "; ".join(_describe(k, v) for k, v in targets.items()))
    machine = _collect(runs, soft)
    if machine:
        out.append("the machines differ in " + "; ".join(_describe(k, v) for k, v in machine.items()))
    return out
