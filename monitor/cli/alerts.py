"""The outbox: ``alerts`` (the alerts and each channel's policy) and its ``flush`` (a channel's
held alerts as a digest now), ``retry``, ``enable`` (a disabled channel) and ``test`` (a marked
test alert through a channel).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from ..config import MonitorConfig
from .common import Context, cli, emit, fails_cleanly, json_option, pass_context


@cli.group(invoke_without_command=True)
@click.option("--status", type=click.Choice(["pending", "sent", "failed", "held", "digested"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@json_option
@click.pass_context
def alerts(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """List the outbox: alerts with their status, attempts and last error; then per channel its
    mode, the alerts it holds and when its next digest goes out.

    Example: monitor alerts --status failed
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj

    @fails_cleanly
    def show() -> None:
        with obj.store() as store:
            rows = store.alerts(status=status, limit=limit)
            channels = store.channels()
            held = store.held_summary()
        emit(rows, ["id", "created_at", "channel", "kind", "storyline_id", "status", "attempts",
                    "last_error", "title"], as_json)
        if not as_json:
            for line in policy_lines(obj.config, held, datetime.now(UTC)):
                click.echo(line)
            for channel in channels:
                if channel["disabled_at"]:
                    click.echo(f"channel {channel['name']} DISABLED since {channel['disabled_at']}: "
                               f"{channel['disabled_reason']} (monitor alerts enable "
                               f"{channel['name']})")

    show()


def policy_lines(config: MonitorConfig, held: dict[str, dict[str, Any]], now: datetime) -> list[str]:
    """Per channel: its mode, how many alerts it holds, and when its next digest goes out (in
    its timezone and in UTC)."""
    from ..pipeline import effective_channels
    from ..policy import DIGEST, next_digest

    lines = []
    for channel in effective_channels(config):
        policy = channel.policy
        state = held.get(channel.name, {"held": 0, "due": None})
        if not policy.holds and not state["held"]:
            lines.append(f"channel {channel.name}: instant")
            continue
        terms = [policy.mode + (f" ({policy.schedule.text})" if policy.mode == DIGEST else "")]
        if policy.quiet_hours:
            terms.append(f"quiet {policy.quiet_hours.text}")
        if policy.max_per_hour is not None:
            terms.append(f"at most {policy.max_per_hour}/h")
        if policy.min_score:
            terms.append(f"instant from score {policy.min_score:g}")
        due = state["due"] or (next_digest(policy.schedule, policy.tz, now)
                               if policy.mode == DIGEST else None)
        when = ""
        if due is not None:
            local = due.astimezone(policy.tz)
            when = (f"; next digest {local:%Y-%m-%d %H:%M} {policy.timezone} "
                    f"({due.astimezone(UTC):%H:%M} UTC)")
        lines.append(f"channel {channel.name}: {', '.join(terms)}; {state['held']} held{when}")
    return lines


@alerts.command(name="flush")
@click.argument("channel")
@pass_context
@fails_cleanly
def alerts_flush(obj: Context, channel: str) -> None:
    """Send what a channel holds now: one digest of every alert it holds, delivered at once
    (and retried as any alert if the receiver fails). Exit 1 when it holds nothing.

    Example: monitor alerts flush desk-mail
    """
    from ..pipeline import Monitor, effective_channels

    names = [c.name for c in effective_channels(obj.config)]
    if channel not in names:
        click.echo(f"Error: no channel {channel!r} in {obj.config.source} (channels: "
                   f"{', '.join(names)})", err=True)
        sys.exit(1)
    with obj.store() as store:
        monitor = Monitor(obj.config, store)
        try:
            count = monitor.write_digest(channel, everything=True)
            target = next(c for c in monitor.channels if c.name == channel)
            report = monitor.dispatch(target)
        finally:
            monitor.close()
    if not count:
        click.echo(f"{channel}: nothing held")
        sys.exit(1)
    click.echo(f"{channel}: digest of {count} stories and feed notices queued; "
               f"{report.sent} message(s) sent"
               + (f", {report.retrying} to retry" if report.retrying else ""))


@alerts.command(name="retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--failed", is_flag=True, help="Requeue every failed alert.")
@json_option
@pass_context
@fails_cleanly
def alerts_retry(obj: Context, ids: tuple[int, ...], failed: bool, as_json: bool) -> None:
    """Requeue alerts by id, or every failed one.

    Example: monitor alerts retry --failed
    """
    if not ids and not failed:
        raise click.UsageError("give alert ids or --failed")
    with obj.store() as store:
        count = store.retry_alerts(ids, failed=failed)
    click.echo(json.dumps({"requeued": count}) if as_json else f"requeued {count} alert(s)")
    if not count:
        sys.exit(1)


@alerts.command(name="enable")
@click.argument("channel")
@json_option
@pass_context
@fails_cleanly
def alerts_enable(obj: Context, channel: str, as_json: bool) -> None:
    """Re-enable a channel that was disabled (e.g. after a webhook answered 410).

    Example: monitor alerts enable webhook-0
    """
    with obj.store() as store:
        if not store.enable_channel(channel):
            if as_json:
                click.echo(json.dumps({"channel": channel, "enabled": False}))
            click.echo(f"no channel {channel!r}", err=True)
            sys.exit(1)
    click.echo(json.dumps({"channel": channel, "enabled": True}) if as_json
               else f"channel {channel} enabled")


@alerts.command(name="test")
@click.argument("channel")
@pass_context
@fails_cleanly
def alerts_test(obj: Context, channel: str) -> None:
    """Send a test alert, clearly marked as one, through one channel now, and say what the
    receiver answered. Nothing is written to the outbox. Exit 1 when it was not delivered.

    Example: monitor alerts test webhook-0
    """
    from ..alert import make_channel
    from ..errors import DeliveryError
    from ..models import Alert
    from ..pipeline import effective_channels

    config = obj.delivery_config()  # this one delivers: its ${VAR} secrets are needed
    configs = {c.name: c for c in effective_channels(config)}
    if channel not in configs:
        click.echo(f"Error: no channel {channel!r} in {obj.config.source} (channels: "
                   f"{', '.join(configs)})", err=True)
        sys.exit(1)
    now = datetime.now(UTC)
    alert = Alert(id=0, uid=f"msg_test_{now.strftime('%Y%m%dT%H%M%S')}", channel=channel,
                  kind=TEST_ALERT, storyline_id="test", story_id=None, created_at=now,
                  payload=test_payload(now))
    target = make_channel(configs[channel], user_agent=config.user_agent)
    try:
        target.deliver(alert)
    except DeliveryError as error:
        click.echo(f"{channel}: NOT delivered: {error}", err=True)
        sys.exit(1)
    finally:
        target.close()
    answer = getattr(target, "last_answer", None)
    click.echo(f"{channel}: test alert delivered" + (f"; the receiver answered {answer}" if answer else ""))


TEST_ALERT = "monitor.test"


def test_payload(now: datetime) -> dict[str, Any]:
    """A test alert's body: shaped as a match, typed ``monitor.test``, its title saying so."""
    return {
        "type": TEST_ALERT, "timestamp": now.isoformat(),
        "data": {
            "test": True,
            "storyline": {"id": "test", "name": "TEST (ceasefire-monitor)"},
            "item": {"title": "TEST ALERT from ceasefire-monitor: this channel works, nothing happened",
                     "link": None, "summary": "Sent by 'monitor alerts test'. Not news; no action needed.",
                     "published": now.isoformat(), "source": "ceasefire-monitor", "feed_url": None},
            "score": None, "matched_terms": [], "story_id": None, "sources": [],
        },
    }
