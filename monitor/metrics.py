"""What this process's polls did, for ``/metrics``: polls by outcome and a histogram of their
durations, counted where they happen (``pipeline.Monitor.poll_feed``).

In: one ``observe`` per poll. Out: ``POLLS.collect()``, Prometheus metric families that the web
desk's ``/metrics`` exposes beside what it reads from the database:

* ``monitor_polls_total{outcome, error_code}``: ``ok`` (a body: new, or unchanged), ``not_modified``
  (304) and ``failed``, with the error's stable code (``http.500``, ``fetch.timeout``...);
* ``monitor_poll_duration_seconds``: from the request to the poll recorded.

Plain counters under a lock while polling: ``prometheus_client`` (~50 ms to import) is imported
only when a scrape asks, so ``run --once`` from cron never pays for it. A ``monitor web`` serving
a database alone polls nothing: its series are absent (the counter) or zero (the histogram).
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

POLL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OUTCOMES = {"new": "ok", "unchanged": "ok", "not_modified": "not_modified", "error": "failed"}


class PollMetrics:
    """Polls by outcome and their durations, since the process started. Thread-safe."""

    def __init__(self, buckets: tuple[float, ...] = POLL_BUCKETS) -> None:
        self.buckets = buckets
        self._lock = threading.Lock()
        self._polls: Counter[tuple[str, str]] = Counter()
        self._in_bucket = [0] * (len(buckets) + 1)  # the last: above every bound
        self._sum = 0.0

    def observe(self, outcome: str, error_code: str | None, seconds: float) -> None:
        """One poll: ``outcome`` as ``FeedReport.outcome`` says it (new, unchanged,
        not_modified, error), the error's code when it failed, how long it took."""
        key = (OUTCOMES.get(outcome, outcome), (error_code or "") if outcome == "error" else "")
        with self._lock:
            self._polls[key] += 1
            self._in_bucket[bisect.bisect_left(self.buckets, seconds)] += 1
            self._sum += seconds

    def snapshot(self) -> dict[str, Any]:
        """``{"polls": {(outcome, error_code): n}, "buckets": [cumulative n per bound],
        "count": n, "sum": seconds}``."""
        with self._lock:
            cumulative, total = [], 0
            for n in self._in_bucket[:-1]:
                total += n
                cumulative.append(total)
            return {"polls": dict(self._polls), "buckets": cumulative,
                    "count": total + self._in_bucket[-1], "sum": self._sum}

    def collect(self) -> Iterator[Any]:
        """The Prometheus families (a collector for a ``CollectorRegistry``)."""
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        seen = self.snapshot()
        polls = CounterMetricFamily("monitor_polls", "Polls of feeds by this process, by outcome "
                                    "(ok, not_modified, failed) and error code",
                                    labels=["outcome", "error_code"])
        for (outcome, code), n in sorted(seen["polls"].items()):
            polls.add_metric([outcome, code], n)
        yield polls
        buckets = [(floatToGoString(bound), n) for bound, n in zip(self.buckets, seen["buckets"],
                                                                      strict=True)]
        yield HistogramMetricFamily("monitor_poll_duration_seconds",
                                    "Polls of feeds by this process: from the request to the poll recorded",
                                    buckets=[*buckets, ("+Inf", seen["count"])], sum_value=seen["sum"])


POLLS = PollMetrics()  # this process's polls (the pipeline counts, the web desk shows)
