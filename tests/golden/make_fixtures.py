"""How the golden fixtures were made (kept for provenance; the tests do not run this).

    python tests/golden/make_fixtures.py SRC_A_GROUP SRC_B_GROUP

takes the first four runs of two groups of real runs (here: the reference server over
Streamable HTTP, open model 60/s, echo + blob, 3 s; B with ``[target] delay_ms = 1``), keeps
run.json and http.hlog, and makes them comparable and interesting:

- B's scenario hash is set to A's (B differs by a server-side delay, standing in for a slower
  build of the same scenario);
- B's run-02 gets one silent ``truncated`` blob, a kind A never had;
- run-01 on each side gets a small ``checks`` section whose observed behaviour differs.

Then regenerate the expected outputs with ``MCP_LOADTEST_UPDATE_GOLDEN=1 pytest tests/test_compare_golden.py``
and read the diff before committing it.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import orjson

HERE = Path(__file__).parent / "compare"


def main(src_a: Path, src_b: Path) -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    hash_a = None
    for side, src in (("a", src_a), ("b", src_b)):
        runs = sorted(p for p in src.iterdir() if (p / "run.json").is_file())[:4]
        for n, run in enumerate(runs, start=1):
            out = HERE / side / f"run-{n:02d}"
            out.mkdir(parents=True)
            doc = orjson.loads((run / "run.json").read_bytes())
            doc["meta"]["host"] = "golden"
            doc["meta"]["target"]["command"] = "reference_server.py"
            if side == "a":
                hash_a = doc["meta"]["scenario_hash"]
            else:
                doc["meta"]["scenario_hash"] = hash_a
                doc["scenario"].get("target", {}).pop("delay_ms", None)
            if side == "b" and n == 2:
                blob = doc["transports"]["http"]["ops"]["blob"]
                blob["ok"] -= 1
                blob["silent"] = {"truncated": 1}
                blob["silent_examples"] = {
                    "truncated": [{"detail": "blob of 4096 bytes ended at byte 2048 (seed 17)"}]
                }
                doc["totals"]["silent_failures"] = 1
            if n == 1:
                observed = "DELETE -> 200 application/json" if side == "a" else "DELETE -> 405"
                status = "SUCCESS" if side == "a" else "WARNING"
                doc["checks"] = [
                    {
                        "id": "http-delete-session",
                        "name": "DELETE ends the session",
                        "status": status,
                        "transport": "http",
                        "spec": {"versions": ["2025-06-18"], "ref": ""},
                        "observed": observed,
                        "details": {},
                    },
                    {
                        "id": "http-get-stream",
                        "name": "GET opens an SSE stream",
                        "status": "SUCCESS",
                        "transport": "http",
                        "spec": {"versions": ["2025-06-18"], "ref": ""},
                        "observed": "GET -> 200 text/event-stream",
                        "details": {},
                    },
                ]
            (out / "run.json").write_bytes(
                orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
            )
            shutil.copy(run / "http.hlog", out / "http.hlog")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
