"""The daemon: a thin APScheduler shell over ``pipeline.Monitor``.

In: a ``Monitor``. Out: nothing until SIGINT/SIGTERM; meanwhile one interval job per feed
(jittered, one instance at a time, coalesced, a misfire grace that fits its interval)
and one delivery job per alert channel, each in the thread pool so a slow feed or a dead
receiver never holds up the others.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from .config import FeedConfig
from .pipeline import Monitor

log = logging.getLogger(__name__)

DISPATCH_INTERVAL = 1.0  # seconds between looks at a channel's outbox


def poll_job(monitor: Monitor, feed: FeedConfig) -> None:
    if not monitor.is_due(feed):
        log.debug("%s: backing off after failures; skipped", feed.name, extra={"feed_url": feed.url})
        return
    report = monitor.poll_feed(feed)
    if report.stored.new_alerts:
        log.info("%s: %d alert(s) queued", feed.name, report.stored.new_alerts)


def build_scheduler(monitor: Monitor, executor: ThreadPoolExecutor) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(executors={"default": executor}, timezone="UTC")
    start = datetime.now(monitor.clock().tzinfo)
    for index, feed in enumerate(monitor.config.feeds):
        scheduler.add_job(
            poll_job, IntervalTrigger(seconds=feed.interval, jitter=feed.interval * 0.1),
            args=(monitor, feed), id=f"feed:{feed.url}", name=f"poll {feed.name}",
            max_instances=1, coalesce=True, misfire_grace_time=max(1, int(feed.interval / 2)),
            # The first polls are spread over a few seconds rather than all at once.
            next_run_time=start.fromtimestamp(start.timestamp() + index * 0.2, start.tzinfo),
        )
    for channel in monitor.channels:
        scheduler.add_job(
            monitor.dispatch, IntervalTrigger(seconds=DISPATCH_INTERVAL), args=(channel,),
            id=f"dispatch:{channel.name}", name=f"deliver on {channel.name}", max_instances=1,
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
    workers = max(4, min(64, len(monitor.config.feeds) + len(monitor.channels) + 2))
    executor = ThreadPoolExecutor(workers)
    scheduler = build_scheduler(monitor, executor)
    scheduler.start()
    log.info("monitoring %d feeds for %d storylines; alerts on %s",
             len(monitor.config.feeds), len(monitor.config.storylines),
             ", ".join(c.name for c in monitor.channels))
    await stop.wait()
    log.info("stopping: waiting for running polls and deliveries to finish")
    scheduler.shutdown(wait=False)
    await loop.run_in_executor(None, executor.shutdown, True)
    log.info("stopped")


def run_forever(monitor: Monitor) -> None:
    asyncio.run(serve(monitor))
