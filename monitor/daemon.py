"""The daemon: a thin APScheduler shell over ``pipeline.Monitor``.

In: a ``Monitor``. Out: nothing until SIGINT/SIGTERM; meanwhile one interval job per feed
(jittered, one instance at a time, coalesced, a misfire grace that fits its interval)
and one delivery job per alert channel, each in the thread pool so a slow feed or a dead
receiver never holds up the others; a job that picks up feeds added, removed, paused or resumed
on the command line (``FEEDS_RELOAD`` seconds), one that rebuilds the learned layer when the
desk's verdicts changed (``LEARNED_REFRESH`` seconds, with ``learned = true``), and a line in
the log per ``poll_interval`` on what was done, so that a daemon whose feeds all answer 304
does not look dead.

On a database that several instances share (PostgreSQL, ``store.shared``), the feeds are not
given one job each: one job claims due feeds every ``CLAIM_INTERVAL`` (as many as the instance
has free poll threads) and polls them in its pool, each under a lease of ``LEASE_SECONDS`` that a
heartbeat job extends every ``HEARTBEAT_SECONDS`` while the instance lives; a channel is
delivered by whichever instance holds its lease, which lasts one delivery (the channel's
timeout and ``CHANNEL_LEASE_MARGIN``) and is renewed before each alert. An instance that dies
holds its feeds for at most one lease and its channels for at most one delivery's lease; a
clean stop gives them up at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor as PollPool
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .config import FeedConfig
from .errors import StoreError
from .pipeline import Monitor
from .store import Lease

log = logging.getLogger(__name__)

DISPATCH_INTERVAL = 1.0  # seconds between looks at a channel's outbox
FEEDS_RELOAD = 30.0  # seconds between looks at the feeds added or paused in the database
FIRST_POLL_SPREAD = 5.0  # seconds over which the first polls of all feeds start
LEARNED_REFRESH = 30.0  # seconds between looks at the desk's verdicts (learned = true)
# Several instances on one database (store.shared):
LEASE_SECONDS = 30.0  # how long a claimed feed or channel stays an instance's without a heartbeat
HEARTBEAT_SECONDS = 10.0  # how often a live instance extends its leases (a third of a lease)
CLAIM_INTERVAL = 1.0  # seconds between claims of due feeds
# The instances an instance shares the feeds with: those that beat in the last two heartbeats
# (one killed a minute ago is no peer: counting it shrank the survivors' share of each claim).
PEER_WITHIN = 2 * HEARTBEAT_SECONDS + 1.0
CHANNEL_LEASE_MARGIN = 5.0  # a channel's lease: its delivery timeout and this, renewed per alert


def poll_job(monitor: Monitor, feed: FeedConfig, wake_dispatchers: Callable[[], None]) -> None:
    if not monitor.is_due(feed):
        log.debug("%s: backing off after failures; skipped", feed.name, extra={"feed_url": feed.url})
        return
    report = monitor.poll_feed(feed)
    if report.stored.new_alerts:
        log.info("%s: %d alert(s) queued", feed.name, report.stored.new_alerts)
        wake_dispatchers()  # deliver now rather than at the next look at the outbox


def poll_trigger(interval: float) -> IntervalTrigger:
    """Polls every ``interval`` at most, jittered so that feeds drift apart: APScheduler adds
    0 to ``jitter`` seconds to each nominal time, so nominal times ``interval - jitter`` apart
    never leave more than ``interval`` between two polls (new item → alert ≤ interval + work)."""
    jitter = min(interval * 0.1, 30.0)
    return IntervalTrigger(seconds=interval - jitter, jitter=jitter)


def build_scheduler(monitor: Monitor, executor: ThreadPoolExecutor) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(executors={"default": executor}, timezone="UTC")
    start = datetime.now(UTC)
    dispatch_ids = [f"dispatch:{channel.name}" for channel in monitor.channels]

    def wake_dispatchers() -> None:
        now = datetime.now(UTC)
        for job_id in dispatch_ids:
            scheduler.modify_job(job_id, next_run_time=now)

    def schedule(feed: FeedConfig, first: datetime) -> None:
        scheduler.add_job(
            poll_job, poll_trigger(feed.interval), args=(monitor, feed, wake_dispatchers),
            id=f"feed:{feed.url}", name=f"poll {feed.name}",
            max_instances=1, coalesce=True, misfire_grace_time=max(1, int(feed.interval / 2)),
            next_run_time=first,
        )

    # The first polls are spread over at most a few seconds rather than all at once.
    spread = min(0.2, FIRST_POLL_SPREAD / max(1, len(monitor.feeds)))
    for index, feed in enumerate(monitor.feeds):
        schedule(feed, start + timedelta(seconds=index * spread))
    scheduled = {feed.url: feed for feed in monitor.feeds}

    def reload_feeds() -> None:
        """Feeds added, removed, paused, resumed or changed since: their jobs follow."""
        now = datetime.now(UTC)
        wanted = {feed.url: feed for feed in monitor.reload_feeds()}
        for url, feed in list(scheduled.items()):
            if wanted.get(url) != feed:
                scheduler.remove_job(f"feed:{url}")
                del scheduled[url]
                if url not in wanted:
                    log.info("%s: no longer polled (removed or paused)", feed.name)
        for url, feed in wanted.items():
            if url not in scheduled:
                schedule(feed, now)
                scheduled[url] = feed
                log.info("%s: polled from now on, every %s", feed.name, _every(feed.interval))

    scheduler.add_job(reload_feeds, IntervalTrigger(seconds=FEEDS_RELOAD), id="feeds:reload",
                      name="reload feeds", max_instances=1, coalesce=True)
    add_common_jobs(scheduler, monitor)
    for channel, job_id in zip(monitor.channels, dispatch_ids, strict=True):
        scheduler.add_job(
            monitor.dispatch, IntervalTrigger(seconds=DISPATCH_INTERVAL), args=(channel,),
            id=job_id, name=f"deliver on {channel.name}", max_instances=1,
            coalesce=True, misfire_grace_time=30, next_run_time=start,
        )
    return scheduler


def add_common_jobs(scheduler: AsyncIOScheduler, monitor: Monitor) -> None:
    """The jobs every instance runs: the learned layer's refresh, the summary line."""

    def summary() -> None:
        line = monitor.cycle_summary()
        log.info("last %s: %s", _every(monitor.config.poll_interval),
                 line or "nothing polled or delivered")

    def refresh_learned() -> None:
        """Verdicts given since (``monitor feedback``): the learned layer is rebuilt here, in the
        pool, and swapped in; polls keep deciding with the one they had meanwhile."""
        try:
            monitor.refresh_learned()
        except Exception as error:  # a failed rebuild keeps the layer in use
            log.warning("the desk's examples changed but the learned layer could not be rebuilt "
                        "(%s); still deciding with the one built before", error)

    if any(s.learned for s in monitor.config.storylines):
        scheduler.add_job(refresh_learned, IntervalTrigger(seconds=LEARNED_REFRESH),
                          id="learned:refresh", name="retrain on new verdicts", max_instances=1,
                          coalesce=True)
    scheduler.add_job(summary, IntervalTrigger(seconds=monitor.config.poll_interval), id="summary",
                      name="summary", max_instances=1, coalesce=True)


class Instance:
    """This process as one of several on a shared database: its id, its feeds being polled."""

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.id = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:6]}"
        self.polling: set[str] = set()  # feed URLs claimed and not yet polled to the end
        self.peers = 1  # instances alive on the database, this one included (at the last heartbeat)
        self.lock = threading.Lock()


def build_shared_scheduler(monitor: Monitor, executor: ThreadPoolExecutor, instance: Instance,
                           polls: PollPool, workers: int) -> AsyncIOScheduler:
    """The jobs of one instance of several on a shared database (see the module's docstring)."""
    scheduler = AsyncIOScheduler(executors={"default": executor}, timezone="UTC")
    store = monitor.store
    start = datetime.now(UTC)
    feeds = {feed.url: feed for feed in monitor.feeds}
    dispatch_ids = [f"dispatch:{channel.name}" for channel in monitor.channels]
    lease = timedelta(seconds=LEASE_SECONDS)

    def wake_dispatchers() -> None:
        now = datetime.now(UTC)
        for job_id in dispatch_ids:
            scheduler.modify_job(job_id, next_run_time=now)

    def poll(feed: FeedConfig, claimed: Lease) -> None:
        try:
            report = monitor.poll_feed(feed, lease=claimed)
            if report.stored.new_alerts:
                log.info("%s: %d alert(s) queued", feed.name, report.stored.new_alerts)
                wake_dispatchers()
        finally:
            with instance.lock:
                instance.polling.discard(feed.url)

    @_logs_store_errors("claim due feeds")
    def claim() -> None:
        # At most this instance's share of the feeds at once, so that instances claiming in
        # turn split the due feeds between them rather than the first taking them all.
        with instance.lock:
            free = min(workers - len(instance.polling), -(-len(feeds) // instance.peers))
        now = datetime.now(UTC)
        for claimed in store.claim_feeds(instance.id, now=now, until=now + lease, limit=free):
            feed = feeds.get(claimed.feed_url)
            if feed is None:  # in the database, not in this instance's config (or paused here)
                store.release_feed(claimed, next_poll_at=now + timedelta(seconds=FEEDS_RELOAD))
                continue
            with instance.lock:
                instance.polling.add(feed.url)
            polls.submit(poll, feed, claimed)

    @_logs_store_errors("reload feeds")
    def reload_feeds() -> None:
        feeds.clear()
        feeds.update((feed.url, feed) for feed in monitor.reload_feeds())

    def deliver(channel: Any) -> None:
        # The channel's lease lasts one delivery (the channel's timeout) and a margin, renewed
        # before each: a holder killed mid-delivery keeps it that long, not a whole feed lease.
        config = monitor.channel_config(channel.name)
        hold = timedelta(seconds=(config.timeout if config else 10.0) + CHANNEL_LEASE_MARGIN)

        def holds() -> bool:
            now = datetime.now(UTC)
            return store.claim_channel(channel.name, instance.id, now=now, until=now + hold)

        try:
            if holds():
                monitor.dispatch(channel, holds=holds)
        except StoreError as error:  # the database unreachable too long: the next turn retries
            log.error("deliver on %s: %s", channel.name, error)

    scheduler.add_job(claim, IntervalTrigger(seconds=CLAIM_INTERVAL, jitter=CLAIM_INTERVAL / 2),
                      id="feeds:claim",
                      name="claim due feeds", max_instances=1, coalesce=True, next_run_time=start)
    scheduler.add_job(reload_feeds, IntervalTrigger(seconds=FEEDS_RELOAD), id="feeds:reload",
                      name="reload feeds", max_instances=1, coalesce=True)
    add_common_jobs(scheduler, monitor)
    for channel, job_id in zip(monitor.channels, dispatch_ids, strict=True):
        scheduler.add_job(
            deliver, IntervalTrigger(seconds=DISPATCH_INTERVAL), args=(channel,),
            id=job_id, name=f"deliver on {channel.name}", max_instances=1,
            coalesce=True, misfire_grace_time=30, next_run_time=start,
        )
    return scheduler


def heartbeat(store: Any, instance: Instance) -> None:
    """The instance is alive: its leases are extended by one lease from now."""
    now = datetime.now(UTC)
    instance.peers = max(1, store.heartbeat(instance.id, now=now,
                                            until=now + timedelta(seconds=LEASE_SECONDS),
                                            alive_within=PEER_WITHIN))


def _logs_store_errors(what: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """A job whose database is unreachable logs one line and waits for its next turn."""
    def wrap(job: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            except StoreError as error:
                log.error("%s: %s; trying again at the next turn", what, error)
        return run
    return wrap


async def serve(monitor: Monitor) -> None:
    """Run until SIGINT or SIGTERM, then stop cleanly: no new jobs; running ones finish
    (every write is one transaction, so even a hard kill loses nothing)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    monitor.load_matcher()  # now: models trained on the desk's examples, and their warnings
    workers = max(4, min(64, len(monitor.feeds) + len(monitor.channels) + 4))
    executor = ThreadPoolExecutor(workers)
    store = monitor.store
    instance = Instance()
    store.register_instance(instance.id, host=instance.host, pid=instance.pid, now=datetime.now(UTC))
    polls: PollPool | None = None
    if store.shared:
        poll_workers = max(4, min(64, len(monitor.feeds)))
        polls = PollPool(poll_workers, thread_name_prefix="poll")
        scheduler = build_shared_scheduler(monitor, executor, instance, polls, poll_workers)
    else:
        scheduler = build_scheduler(monitor, executor)
    scheduler.add_job(_logs_store_errors("heartbeat")(lambda: heartbeat(store, instance)),
                      IntervalTrigger(seconds=HEARTBEAT_SECONDS), id="heartbeat", name="heartbeat",
                      max_instances=1, coalesce=True, next_run_time=datetime.now(UTC))
    scheduler.start()
    log.info("monitoring %d feeds for %d storylines; alerts on %s%s",
             len(monitor.feeds), len(monitor.config.storylines),
             ", ".join(c.name for c in monitor.channels),
             f"; instance {instance.id} of those sharing {store.location} (leases of "
             f"{LEASE_SECONDS:g} s)" if store.shared else "")
    await stop.wait()
    log.info("stopping: waiting for running polls and deliveries to finish")
    scheduler.shutdown(wait=False)
    await loop.run_in_executor(None, executor.shutdown, True)
    if polls is not None:
        await loop.run_in_executor(None, polls.shutdown, True)
    try:
        store.stop_instance(instance.id, now=datetime.now(UTC))
    except StoreError as error:  # its leases pass by themselves
        log.warning("could not give up this instance's leases: %s", error)
    log.info("stopped")


def _every(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def run_forever(monitor: Monitor) -> None:
    asyncio.run(serve(monitor))
