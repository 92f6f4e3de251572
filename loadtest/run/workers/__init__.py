"""``--workers N``: one transport's load spread over N generator processes.

One Python event loop is at most one core. When a generator needs more than that (a fast
server with cores to spare, thousands of sessions), ``run --workers N`` starts N worker
processes, one event loop each, driving shares of the one workload against the one target:

* The parent (:mod:`.parent`) launches the target once (for stdio every session starts its
  own server, in whichever worker opens it), then the workers, ``python -m loadtest.run.workers``
  (:mod:`.child`).
* Closed model: the sessions, each stage's sessions and a request limit are split between the
  workers (:mod:`.split`). Open model: worker ``i`` sends arrivals ``i, i+N, i+2N, ...`` of the
  one schedule on its share of the sessions, so together they send exactly what one process
  would have.
* Every worker opens its first session (the readiness check), says so, and starts its clock at
  the common instant the parent names (``perf_counter_ns`` is the system-wide monotonic clock),
  so that warm-up, intervals and the end fall at the same moments in every worker.
* At every interval each worker sends its interval histograms (HdrHistogram V2, encoded) and
  its counters; the parent adds them into its one :class:`~loadtest.measure.metrics.Recorder`
  (:mod:`.merge`), which writes the interval logs and feeds the progress display as without
  workers. Each worker's own totals come along at the end and are checked against the merge.
* Request ids stay unique across workers (worker ``i`` numbers its sessions ``i+1, i+1+N,
  ...``) and so do nonces (the worker's index is part of the nonce token).

The messages are typed (:mod:`.messages`), one JSON object per line; the scenario travels as
data and is validated again in the worker.
"""

from loadtest.run.workers.parent import run_transport_in_workers
from loadtest.run.workers.split import MAX_WORKERS, check_workers, share_scenario, split

__all__ = ["MAX_WORKERS", "check_workers", "run_transport_in_workers", "share_scenario", "split"]
