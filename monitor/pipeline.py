"""The orchestrator: runs feeds through fetch → parse → normalise → match → dedup → store,
and the outbox through the alert channels.

In: a validated ``MonitorConfig`` and an open ``Store``. Out: per-feed ``FeedReport``s and
per-channel ``DispatchReport``s (also logged). Every stage module knows only its own job;
this one knows the order: it fetches, has ``prepare`` turn a changed body into entries (in the
polling thread, or in a worker process of the pool it starts for many new feeds), and stores
them, matched by what ``deciders`` loads. Failures of one feed are caught here, turned into a
stable error code and stored on the feed; they never reach the scheduler.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .alert import Channel, make_channel
from .config import ChannelConfig, FeedConfig, MonitorConfig
from .deciders import decider, learned_models
from .errors import (
    ChannelGone,
    DeliveryPermanent,
    DeliveryRetryable,
    FeedError,
    FetchError,
    LeaseLost,
    MonitorError,
)
from .fetch import Fetcher, backoff_delay, jittered
from .logtext import alert_title, human_duration
from .metrics import POLLS
from .payload import digest_payload
from .prepare import Job, init_worker, parse_body, prepare, prepare_in_worker
from .store import AlertPolicy, Lease, PollOutcome, Store
from .subscriptions import polled_feeds

if TYPE_CHECKING:  # imported when there is something to match (the learned layer: to a model)
    from .learn import LearnedMatcher
    from .match import Matcher

log = logging.getLogger(__name__)

CONSOLE = ChannelConfig(type="console", name="console")
RAMP_AFTER = 0.005  # seconds in one poll after which another polling thread is started
POOL_MIN_FEEDS = 16  # fewer new feeds in one poll_all: no process pool (its start costs ~20 ms)


def utcnow() -> datetime:
    return datetime.now(UTC)


class InternalError(FeedError):
    """A bug of ours met while processing one feed: stored on the feed, never fatal."""

    code = "internal.error"


@dataclass
class FeedReport:
    feed: str
    url: str
    outcome: str  # "new" | "unchanged" | "not_modified" | "error" | "lease_lost"
    status: int | None = None
    entries: int = 0
    stored: PollOutcome = field(default_factory=PollOutcome)
    error: str | None = None
    error_code: str | None = None
    seconds: float = 0.0


@dataclass
class DispatchReport:
    channel: str
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    disabled: bool = False


class Tally:
    """What the polls and deliveries did since it was last taken: the daemon's line per cycle."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.polls = self.failed = self.not_modified = self.new_items = self.queued = 0
        self.sent = self.retrying = self.given_up = 0

    def poll(self, report: FeedReport) -> None:
        with self._lock:
            self.polls += 1
            self.failed += report.outcome == "error"
            self.not_modified += report.outcome in ("not_modified", "unchanged")
            self.new_items += report.stored.new_items
            self.queued += report.stored.new_alerts

    def dispatch(self, report: DispatchReport) -> None:
        with self._lock:
            self.sent += report.sent
            self.retrying += report.retrying
            self.given_up += report.failed

    def take(self) -> str | None:
        with self._lock:
            if not (self.polls or self.sent or self.retrying or self.given_up):
                return None
            line = (f"{self.polls} poll(s): {self.not_modified} unchanged, {self.failed} failed, "
                    f"{self.new_items} new item(s); {self.queued} alert(s) queued, {self.sent} sent"
                    + (f", {self.retrying} to retry" if self.retrying else "")
                    + (f", {self.given_up} failed" if self.given_up else ""))
            self._reset()
            return line


def effective_channels(config: MonitorConfig) -> tuple[ChannelConfig, ...]:
    """The configured channels; the console when none is configured."""
    return config.channels or (CONSOLE,)


class Monitor:
    """One monitor: config, store, fetcher, matcher and channels, and the two jobs it runs."""

    def __init__(self, config: MonitorConfig, store: Store, *,
                 fetcher: Fetcher | None = None,
                 channels: Sequence[Channel] | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.rng = rng or random.Random()
        self.fetcher = fetcher or Fetcher(user_agent=config.user_agent,
                                          max_body_bytes=config.max_body_bytes,
                                          total_timeout=config.fetch_timeout)
        self._matcher: Matcher | LearnedMatcher | None = None
        self._matcher_lock = threading.Lock()
        self._matcher_error: MonitorError | None = None  # a model file that cannot be loaded
        self._desk_seen = ""  # _desk_signature() of the examples the matcher was built from
        self.channel_configs = effective_channels(config)
        self._channel_configs = {c.name: c for c in self.channel_configs}
        self.channels = list(channels) if channels is not None else [
            make_channel(c, user_agent=config.user_agent) for c in self.channel_configs]
        self._pool: Executor | None = None
        store.sync_feeds(config.feeds)
        store.sync_channels(self.channel_configs)
        self.feeds = polled_feeds(config, store)
        self._tally = Tally()

    def channel_config(self, name: str) -> ChannelConfig | None:
        """The config of the channel named ``name`` (None: a channel given to the monitor that
        the config does not name)."""
        return self._channel_configs.get(name)

    def reload_feeds(self) -> tuple[FeedConfig, ...]:
        """Read again which feeds to poll (``monitor feeds add``/``pause`` in another process)."""
        self.feeds = polled_feeds(self.config, self.store)
        return self.feeds

    def cycle_summary(self) -> str | None:
        """One line on what was done since the last call (the daemon logs it once per
        ``poll_interval``), or None when nothing was."""
        return self._tally.take()

    @property
    def matcher(self) -> Matcher | LearnedMatcher:
        """What decides the storylines: the rules, and the model of each storyline that has one
        (``learned_models``). Built on first use (``load_matcher``)."""
        return self._matcher if self._matcher is not None else self.load_matcher()

    def load_matcher(self) -> Matcher | LearnedMatcher:
        """Build the matcher unless built already. A ``run --once`` in which no feed changed never
        needs it: importing it and loading the model files was ~70 ms of a ~0.7 s cycle of 1,000
        304s. The daemon builds it at start-up, where training on the desk's examples and its
        warnings belong."""
        with self._matcher_lock:  # polling threads may ask at once
            if self._matcher_error is not None:
                raise self._matcher_error
            if self._matcher is None:
                from .match import Matcher

                matcher = Matcher(self.config.storylines)
                try:
                    models = learned_models(self.config, self.store, matcher)
                except MonitorError as error:
                    # a poll that needs it fails (recorded on its feed, nothing stored), and
                    # run_once ends with this error: the config is wrong, as if found at start
                    self._matcher_error = error
                    raise
                self._desk_seen = self._desk_signature()
                self._matcher = decider(matcher, models)
            return self._matcher

    def _desk_signature(self) -> str:
        """What the learned layer was built from in the database: every stored example of the
        storylines with ``learned = true`` (a verdict changed, added or imported changes it)."""
        digest = hashlib.sha1()
        for storyline in self.config.storylines:
            if storyline.learned:
                digest.update(f"\x1d{storyline.id}".encode())
                for key, _title, _summary, label in self.store.feedback_examples(storyline.id):
                    digest.update(f"\x1e{key}\x1f{int(label)}".encode())
        return digest.hexdigest()

    def refresh_learned(self) -> bool:
        """Rebuild the matcher when the desk's examples changed since it was built (``monitor
        feedback`` or ``monitor learn`` in another process): trained aside, then swapped in, so
        polls go on deciding with the layer they had meanwhile. True when it was swapped. The
        daemon runs it every ``daemon.LEARNED_REFRESH`` seconds in its thread pool."""
        if self._matcher is None or not any(s.learned for s in self.config.storylines):
            return False
        seen = self._desk_signature()
        if seen == self._desk_seen:
            return False
        from .match import Matcher

        started = time.monotonic()
        matcher = Matcher(self.config.storylines)
        models = learned_models(self.config, self.store, matcher)
        with self._matcher_lock:
            self._matcher, self._desk_seen = decider(matcher, models), seen
        log.info("the desk's examples changed: learned layer rebuilt in %.2fs, in use from now",
                 time.monotonic() - started)
        return True

    def close(self) -> None:
        self.fetcher.close()
        for channel in self.channels:
            channel.close()

    # -- polling

    def policy(self, *, first_poll: bool) -> AlertPolicy:
        now = self.clock()
        return AlertPolicy(
            channels=self.channel_configs,
            storyline_names={s.id: s.name for s in self.config.storylines},
            alert_after=now - timedelta(seconds=self.config.alert_max_age),
            alert_undated=not first_poll,
            dedup_window=self.config.dedup_window,
            event_stories=self.config.stories == "events",
        )

    def is_due(self, feed: FeedConfig) -> bool:
        """False while the feed backs off after failures (or honours a Retry-After)."""
        state = self.store.feed_state(feed.url)
        return state.next_poll_at is None or state.consecutive_errors == 0 or (
            state.next_poll_at <= self.clock())

    def poll_feed(self, feed: FeedConfig, *, lease: Lease | None = None) -> FeedReport:
        """Poll one feed through the whole pipeline. Never raises for the feed's own faults.
        With a ``lease`` (an instance of several on one database claimed the feed), what the
        poll found is stored only while the lease is the feed's current one."""
        started = time.monotonic()
        try:
            report = self._poll(feed, lease)
        except LeaseLost as error:  # another instance polls it now: its poll counts
            log.warning("%s: %s", feed.name, error, extra={"feed_url": feed.url})
            report = FeedReport(feed.name, feed.url, "lease_lost", error=str(error),
                                error_code=error.code)
        except MonitorError as error:
            report = self._failed(feed, error, lease)
        except Exception as error:  # a bug of ours must not stop the other feeds
            log.exception("internal error while polling %s", feed.url,
                          extra={"feed_url": feed.url})
            report = self._failed(feed, InternalError(f"internal error: {type(error).__name__}: "
                                                      f"{error}"), lease)
        report.seconds = time.monotonic() - started
        self._tally.poll(report)
        POLLS.observe(report.outcome, report.error_code, report.seconds)
        return report

    def _poll(self, feed: FeedConfig, lease: Lease | None = None) -> FeedReport:
        state = self.store.feed_state(feed.url)
        if lease is not None and not self.store.holds_feed(lease, now=self.clock()):
            # The lease passed while this poll waited (for the database): another instance may
            # be fetching the feed now; one fetch of a feed at a time. Given up (unless another
            # instance has claimed it since), so that the feed is claimed again at once.
            self.store.release_feed(lease, next_poll_at=self.clock())
            raise LeaseLost(f"{feed.url}: the lease (token {lease.fence}) passed before the "
                            "fetch; not fetched")
        result = self.fetcher.fetch(feed.url, etag=state.etag, last_modified=state.last_modified)
        now = self.clock()
        next_poll_at = now + timedelta(seconds=jittered(feed.interval, self.rng))
        policy = self.policy(first_poll=not state.first_poll_done)
        if result.not_modified:
            self.store.record_not_modified(feed.url, now=now, status=304, next_poll_at=next_poll_at,
                                           etag=result.etag, last_modified=result.last_modified,
                                           policy=policy, lease=lease)
            log.debug("%s: not modified", feed.name, extra={"feed_url": feed.url})
            return FeedReport(feed.name, feed.url, "not_modified", status=304)
        body_hash = hashlib.sha1(result.body).hexdigest()
        if body_hash == state.body_hash:
            # Many sites ignore ETag: an unchanged body is not parsed again.
            self.store.record_not_modified(feed.url, now=now, status=result.status,
                                           next_poll_at=next_poll_at, etag=result.etag,
                                           last_modified=result.last_modified, policy=policy,
                                           lease=lease)
            return FeedReport(feed.name, feed.url, "unchanged", status=result.status)
        job = Job(body=result.body, url=result.url, content_type=result.content_type,
                  content_location=result.content_location, feed_url=feed.url, source=feed.name,
                  now=now)
        pool = self._pool
        if pool is not None:  # parse, normalise, match and fingerprint on another core
            prepared = pool.submit(prepare_in_worker, job).result()
        else:
            prepared = prepare(job, parse_body(job), self.matcher, self.store)
        stored = self.store.record_poll(
            feed.url, prepared.new_entries, now=now, status=result.status, next_poll_at=next_poll_at,
            policy=policy, etag=result.etag, last_modified=result.last_modified,
            body_hash=body_hash, lease=lease)
        if prepared.bozo:
            log.info("%s: ill-formed feed used anyway (%s)", feed.name, prepared.bozo,
                     extra={"feed_url": feed.url})
        log.info("%s: %d entries, %d new items, %d matches, %d alerts queued", feed.name,
                 prepared.entries, stored.new_items, stored.new_matches, stored.new_alerts,
                 extra={"feed_url": feed.url})
        return FeedReport(feed.name, feed.url, "new", status=result.status, entries=prepared.entries,
                          stored=stored)

    def _failed(self, feed: FeedConfig, error: MonitorError,
                lease: Lease | None = None) -> FeedReport:
        now = self.clock()
        status = getattr(error, "status", None)
        try:
            state = self.store.feed_state(feed.url)
            retry_after = error.retry_after if isinstance(error, FetchError) else None
            delay = backoff_delay(state.consecutive_errors + 1, feed.interval,
                                  retry_after=retry_after, cap=self.config.backoff_max, rng=self.rng)
            state = self.store.record_failure(
                feed.url, error, now=now, next_poll_at=now + timedelta(seconds=delay), status=status,
                down_after=self.config.feed_down_after, policy=self.policy(first_poll=False),
                lease=lease)
            log.warning("%s: %s [%s]; %d failure(s) in a row, next try in %s", feed.name, error,
                        error.code, state.consecutive_errors, human_duration(delay),
                        extra={"feed_url": feed.url, "error_code": error.code})
        except MonitorError as store_error:
            log.error("%s: %s; and it could not be recorded: %s", feed.name, error, store_error,
                      extra={"feed_url": feed.url})
        return FeedReport(feed.name, feed.url, "error", status=status, error=str(error),
                          error_code=error.code)

    def poll_all(self, feeds: Sequence[FeedConfig] | None = None, *,
                 only_due: bool = False) -> list[FeedReport]:
        """Poll feeds concurrently (fetching is I/O; the sync client in threads was measured
        faster than httpx's AsyncClient here). Reports come back in config order."""
        feeds = list(self.feeds if feeds is None else feeds)
        if only_due:
            feeds = [feed for feed in feeds if self.is_due(feed)]
        if not feeds:
            return []
        workers = max(1, min(self.config.fetch_workers, len(feeds)))
        self._pool = self._start_pool(feeds)
        try:
            # the feeds' writes share a transaction per GROUP_COMMIT_SECONDS (store.grouped_writes)
            with self.store.grouped_writes():
                return self._poll_concurrently(feeds, workers)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def _poll_concurrently(self, feeds: Sequence[FeedConfig], workers: int) -> list[FeedReport]:
        """``poll_feed`` over ``feeds`` in up to ``workers`` threads, in config order.

        Threads pay off only while polls wait (on the network, or on the parse workers); when
        every poll is quick they contend for the GIL instead (1,000 polls answered 304 on
        loopback: 0.31 s in one thread, 0.49 s in eight). So polling starts in one thread, and
        another is started whenever every running thread has been in one poll for longer
        than ``RAMP_AFTER``, up to ``workers``."""
        reports: list[FeedReport | None] = [None] * len(feeds)
        queue = iter(enumerate(feeds))
        lock = threading.Lock()
        started: dict[int, float] = {}  # thread number -> when its current poll started
        finished = threading.Event()
        stopping = threading.Event()  # set when the caller is interrupted: no new polls start
        running = [0]

        def work(number: int) -> None:
            try:
                while True:
                    with lock:
                        index, feed = next(queue, (-1, None)) if not stopping.is_set() else (-1, None)
                        if feed is None:
                            started.pop(number, None)
                            return
                        started[number] = time.monotonic()
                    reports[index] = self.poll_feed(feed)
            finally:
                with lock:
                    running[0] -= 1
                    if not running[0]:
                        finished.set()

        threads: list[threading.Thread] = []

        def start() -> None:
            with lock:
                running[0] += 1
            thread = threading.Thread(target=work, args=(len(threads),), name=f"poll-{len(threads)}")
            threads.append(thread)
            thread.start()

        start()
        try:
            while not finished.wait(RAMP_AFTER):
                if len(threads) < workers:
                    with lock:
                        now = time.monotonic()
                        waiting = len(started) == running[0] and all(
                            now - since >= RAMP_AFTER for since in started.values())
                    if waiting:
                        start()
        finally:  # interrupted (Ctrl-C): the polls in flight end, no other starts
            stopping.set()
            for thread in threads:
                thread.join()
        return [report for report in reports if report is not None]

    def _start_pool(self, feeds: Sequence[FeedConfig]) -> Executor | None:
        """A process pool for the CPU work of many feeds at once (parsing is the wall, not the
        network): one worker per core, when there are several cores and enough feeds never
        parsed yet (a first poll: every entry is new). Started here, before the fetch
        threads, so that forking never copies a thread in the middle of something."""
        cores = os.cpu_count() or 1
        if cores < 2 or len(feeds) < POOL_MIN_FEEDS:
            return None
        urls = {feed.url for feed in feeds}
        if sum(1 for s in self.store.feed_states() if s.url in urls and s.body_hash is None) < (
                POOL_MIN_FEEDS):
            return None
        # imported here: a cycle of 304s (or a daemon's later polls) never needs them
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        pool = ProcessPoolExecutor(
            max_workers=cores, mp_context=multiprocessing.get_context(method),
            initializer=init_worker, initargs=(self.matcher, self.store.connect_to))
        pool.submit(int).result()  # the workers start now, while this is the only thread
        return pool

    # -- delivering

    def dispatch(self, channel: Channel, *, limit: int = 100,
                 holds: Callable[[], bool] | None = None) -> DispatchReport:
        """Deliver the channel's due alerts in order of creation until none is due,
        the channel fails (then it backs off as a whole), or ``limit`` were tried. Logs one
        line for the channel when anything was tried (each alert: at debug level).
        ``holds``: asked before each delivery (an instance of several renews its lease of the
        channel); False stops the turn."""
        report = self._dispatch(channel, limit, holds)
        self._tally.dispatch(report)
        if report.sent or report.retrying or report.failed:
            log.info("%s: %d alert(s) sent%s%s", channel.name, report.sent,
                     f", {report.retrying} to retry" if report.retrying else "",
                     f", {report.failed} failed" if report.failed else "")
        return report

    def write_digest(self, channel: str, *, everything: bool = False) -> int:
        """The channel's digest, when one is due (``everything``: now, of all it holds): one
        outbox row written with the held alerts it covers marked, in one transaction. A channel
        whose policy holds nothing (any more) sends what it held at once. Returns how many
        stories and feed notices the digest tells (0: none written)."""
        now = self.clock()
        config = self.channel_config(channel)
        due_by = None if everything or config is None or not config.policy.holds else now
        held = self.store.held_alerts(channel, due_by=due_by)
        if not held:
            return 0
        body = digest_payload(
            timestamp=now, channel=channel, alerts=[(a.kind, a.payload) for a in held],
            sources=self.store.story_sources(a.story_id for a in held if a.story_id is not None),
            since=min(a.created_at for a in held))
        count = int(body["data"]["count"]) + len(body["data"]["feeds"])
        if self.store.write_digest(channel, body, [a.id for a in held], now=now) is None:
            return 0  # another process wrote it first
        log.info("%s: digest of %d stories and notices queued (%d held alerts)", channel, count,
                 len(held))
        return count

    def _dispatch(self, channel: Channel, limit: int,
                  holds: Callable[[], bool] | None = None) -> DispatchReport:
        report = DispatchReport(channel.name)
        tried = 0
        self.write_digest(channel.name)
        while tried < limit:
            due = self.store.due_alerts(channel.name, now=self.clock(), limit=min(20, limit - tried))
            if not due:
                break
            for alert in due:
                if holds is not None and not holds():
                    return report  # another instance delivers the channel now
                tried += 1
                now = self.clock()
                age = (now - (alert.queued_at or alert.created_at)).total_seconds()
                if age > self.config.delivery_max_age:
                    reason = (f"gave up after {human_duration(age)} and {alert.attempts} attempt(s); "
                              f"last error: {alert.last_error or 'none'}")
                    self.store.mark_failed(alert.id, reason, now=now)
                    log.error("alert %s on %s failed: %s", alert.uid, channel.name, reason)
                    report.failed += 1
                    continue
                try:
                    channel.deliver(alert)
                except ChannelGone as error:
                    self.store.mark_retry(alert.id, str(error), now=now, channel_next_attempt=now)
                    self.store.disable_channel(channel.name, str(error), now=now)
                    log.error("channel %s disabled: %s (re-enable with "
                              "'monitor alerts enable %s')", channel.name, error, channel.name)
                    report.disabled = True
                    return report
                except DeliveryPermanent as error:
                    self.store.mark_failed(alert.id, str(error), now=now)
                    log.error("alert %s on %s failed for good: %s", alert.uid, channel.name, error)
                    report.failed += 1
                except Exception as error:  # retryable, or a bug in a channel: try again later
                    if not isinstance(error, DeliveryRetryable):
                        log.exception("internal error delivering %s on %s", alert.uid, channel.name)
                    failures = self.store.channel_failures(channel.name) + 1
                    delay = self.retry_delay(failures, getattr(error, "retry_after", None))
                    self.store.mark_retry(alert.id, str(error), now=now,
                                          channel_next_attempt=now + timedelta(seconds=delay))
                    log.warning("alert %s on %s not delivered (%s); channel retries in %s",
                                alert.uid, channel.name, error, human_duration(delay))
                    report.retrying += 1
                    return report
                else:
                    self.store.mark_sent(alert.id, now=self.clock())
                    log.debug("alert %s sent on %s: %s", alert.uid, channel.name, alert_title(alert))
                    report.sent += 1
        return report

    def retry_delay(self, failures: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter between base and the exponential bound,
        capped; never earlier than the receiver's Retry-After."""
        base = self.config.delivery_retry_base
        bound = min(self.config.delivery_retry_max, base * 2 ** min(failures - 1, 30))
        delay = self.rng.uniform(base, max(base, bound))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.config.delivery_retry_max))
        return delay

    def dispatch_all(self) -> list[DispatchReport]:
        """Every channel in its own thread: a slow or dead channel never delays another."""
        if len(self.channels) == 1:
            return [self.dispatch(self.channels[0])]
        with ThreadPoolExecutor(max_workers=len(self.channels),
                                thread_name_prefix="dispatch") as pool:
            return list(pool.map(self.dispatch, self.channels))

    def run_once(self) -> tuple[list[FeedReport], list[DispatchReport]]:
        """Poll every feed once, then deliver what is due: ``monitor run --once``. Raises the
        error of a matcher that could not be built (a broken model file) after the polls."""
        feeds = self.poll_all()
        if self._matcher_error is not None:
            raise self._matcher_error
        return feeds, self.dispatch_all()
