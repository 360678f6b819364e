"""The daemon: a thin APScheduler shell over ``pipeline.Monitor``.

In: a ``Monitor``. Out: nothing until SIGINT/SIGTERM; meanwhile one interval job per feed
(jittered, one instance at a time, coalesced, a misfire grace that fits its interval)
and one delivery job per alert channel, each in the thread pool so a slow feed or a dead
receiver never holds up the others; a job that picks up feeds added, removed, paused or resumed
on the command line (``FEEDS_RELOAD`` seconds), one that rebuilds the learned layer when the
desk's verdicts changed (``LEARNED_REFRESH`` seconds, with ``learned = true``), and a line in
the log per ``poll_interval`` on what was done, so that a daemon whose feeds all answer 304
does not look dead.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .config import FeedConfig
from .pipeline import Monitor

log = logging.getLogger(__name__)

DISPATCH_INTERVAL = 1.0  # seconds between looks at a channel's outbox
FEEDS_RELOAD = 30.0  # seconds between looks at the feeds added or paused in the database
FIRST_POLL_SPREAD = 5.0  # seconds over which the first polls of all feeds start
LEARNED_REFRESH = 30.0  # seconds between looks at the desk's verdicts (learned = true)


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

    def summary() -> None:
        line = monitor.cycle_summary()
        log.info("last %s: %s", _every(monitor.config.poll_interval),
                 line or "nothing polled or delivered")

    scheduler.add_job(reload_feeds, IntervalTrigger(seconds=FEEDS_RELOAD), id="feeds:reload",
                      name="reload feeds", max_instances=1, coalesce=True)
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
    for channel, job_id in zip(monitor.channels, dispatch_ids, strict=True):
        scheduler.add_job(
            monitor.dispatch, IntervalTrigger(seconds=DISPATCH_INTERVAL), args=(channel,),
            id=job_id, name=f"deliver on {channel.name}", max_instances=1,
            coalesce=True, misfire_grace_time=30, next_run_time=start,
        )
    return scheduler


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
    scheduler = build_scheduler(monitor, executor)
    scheduler.start()
    log.info("monitoring %d feeds for %d storylines; alerts on %s",
             len(monitor.feeds), len(monitor.config.storylines),
             ", ".join(c.name for c in monitor.channels))
    await stop.wait()
    log.info("stopping: waiting for running polls and deliveries to finish")
    scheduler.shutdown(wait=False)
    await loop.run_in_executor(None, executor.shutdown, True)
    log.info("stopped")


def _every(seconds: float) -> str:
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{seconds:g}s"


def run_forever(monitor: Monitor) -> None:
    asyncio.run(serve(monitor))
