"""What makes two runs comparable: the workload asked of the target, not where the target lives.

The resolved scenario (run.json ``scenario``) has three kinds of keys:

- **workload** (``transports``, ``workload``, ``ops``): what was asked of the target. Runs
  that differ here measured different things; ``compare`` refuses them and names the keys.
- **target** (``target``: command, url, headers, env, ready timeout, and the reference server's
  own knobs ``delay_ms``, ``json_response``, ``stateless``, ``leak_kb_per_session``): where
  the target lives and how it is started. Comparing two builds of one's server
  (``--target-cmd /opt/v1/...`` against ``/opt/v2/...``) is the point of an A/B, so these
  differences are shown in the report's header, never refused. ``delay_ms`` is a knob of the
  reference server (it makes that server slower), so it belongs to the target too.
- **labels and judgement** (name, description, source, thresholds, health, soak): neither.

:func:`workload_hash` is the hash of the workload keys only (``meta.workload_hash``);
``meta.scenario_hash`` keeps its older meaning (target included) for scripts that read it.
Comparisons use the stored scenarios themselves where both runs have them, so runs written
before ``workload_hash`` existed compare with new ones without any hash entering into it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["TARGET_KEYS", "WORKLOAD_KEYS", "differing_keys", "workload_hash", "workload_of"]

#: Top-level keys of the resolved scenario that say what was asked of the target.
WORKLOAD_KEYS = ("transports", "workload", "ops")
#: Top-level keys that say where the target lives and how it is launched.
TARGET_KEYS = ("target",)


def workload_of(scenario: Mapping[str, Any]) -> dict[str, Any]:
    """The workload part of a resolved scenario (``Scenario.to_dict()`` or run.json's copy)."""
    return {key: scenario.get(key) for key in WORKLOAD_KEYS}


def workload_hash(scenario: Mapping[str, Any]) -> str:
    """16 hex digits identifying the workload: equal hashes, the same thing was asked."""
    canonical = json.dumps(workload_of(scenario), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_ABSENT = object()


def differing_keys(
    a: Any, b: Any, prefix: str = "", *, skip_absent: bool = False
) -> dict[str, tuple[Any, Any]]:
    """Dotted keys (``workload.rate``, ``ops[1].arguments.text``) whose values differ, with both.

    A key present on one side only differs (value ``None`` on the other), unless
    ``skip_absent``: older run files did not record every key, and for facts that are only
    shown (not refused) a key one side never recorded is not a difference worth a line.
    """
    out: dict[str, tuple[Any, Any]] = {}
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in [*a, *(k for k in b if k not in a)]:
            x, y = a.get(key, _ABSENT), b.get(key, _ABSENT)
            if (x is _ABSENT or y is _ABSENT) and skip_absent:
                continue
            where = f"{prefix}.{key}" if prefix else str(key)
            out.update(
                differing_keys(
                    None if x is _ABSENT else x, None if y is _ABSENT else y, where, skip_absent=skip_absent
                )
            )
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.update(differing_keys(x, y, f"{prefix}[{i}]", skip_absent=skip_absent))
        return out
    if a != b:
        out[prefix or "(scenario)"] = (a, b)
    return out
