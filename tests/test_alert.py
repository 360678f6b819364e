"""Alert channels against real receivers on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import base64
import io
import time
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
import standardwebhooks
from receivers import TEST_SECRET, SMTPReceiver, WebhookReceiver, free_port

from monitor.alert import (
    AppriseChannel,
    Channel,
    ConsoleChannel,
    EmailChannel,
    WebhookChannel,
    build_email,
    console_line,
    encode_body,
    make_channel,
    parse_retry_after,
    sign,
    subject_of,
)
from monitor.config import ChannelConfig
from monitor.errors import ChannelGone, ConfigError, DeliveryPermanent, DeliveryRetryable
from monitor.models import Alert

UA = "ceasefire-monitor/test"
SMTP_PASSWORD = "s3cr3t-Pa55word"


def match_alert(uid: str = "msg_2f3a9c1b7d", title: str = "Hamas delegation arrives in Cairo for truce talks",
                link: str = "https://www.aljazeera.com/news/2026/11/26/hamas-cairo") -> Alert:
    payload = {
        "type": "storyline.match",
        "timestamp": "2026-11-26T07:00:00+00:00",
        "data": {
            "storyline": {"id": "cairo-talks", "name": "Cairo truce talks"},
            "item": {"title": title, "link": link,
                     "summary": "Negotiators met in Cairo on Wednesday — «هدنة» talks resume.",
                     "published": "2026-11-26T06:58:00+00:00", "source": "Al Jazeera",
                     "feed_url": "https://www.aljazeera.com/xml/rss/all.xml"},
            "score": 96.4,
            "matched_terms": [{"term": "cairo", "found": "Cairo", "score": 100.0},
                              {"term": "truce", "found": "truce", "score": 92.8}],
            "story_id": 17,
            "sources": [{"source": "Al Jazeera", "title": title, "link": link},
                        {"source": "Reuters", "title": "Hamas team in Cairo for ceasefire talks",
                         "link": "https://www.reuters.com/world/middle-east/cairo-talks"}],
        },
    }
    return Alert(id=1, uid=uid, channel="test", kind="match", storyline_id="cairo-talks",
                 story_id=17, created_at=datetime(2026, 11, 26, 7, 0, tzinfo=UTC), payload=payload)


def feed_down_alert() -> Alert:
    payload = {"type": "feed.down", "timestamp": "2026-11-26T07:00:00+00:00",
               "data": {"feed": {"name": "Al Jazeera", "url": "https://www.aljazeera.com/xml/rss/all.xml"},
                        "consecutive_errors": 5, "last_error": "fetch.timeout: timed out after 30s"}}
    return Alert(id=2, uid="msg_feeddown1", channel="test", kind="feed_down", storyline_id=None,
                 story_id=None, created_at=datetime(2026, 11, 26, 7, 0, tzinfo=UTC), payload=payload)


@pytest.fixture
def hook():
    with WebhookReceiver(secret=TEST_SECRET) as receiver:
        yield receiver


@pytest.fixture
def smtp():
    with SMTPReceiver(credentials=("monitor", SMTP_PASSWORD)) as receiver:
        yield receiver


def webhook(url: str, *, secret: str | None = TEST_SECRET, timeout: float = 5.0) -> WebhookChannel:
    return WebhookChannel("hook", url, secret=secret, timeout=timeout, user_agent=UA)


def email_channel(port: int, **options) -> EmailChannel:
    settings = {"host": "127.0.0.1", "port": port, "sender": "monitor@example.org",
                "to": ("desk@example.org",), "starttls": False, "timeout": 5.0, "user_agent": UA}
    settings.update(options)
    return EmailChannel("mail", **settings)


# --------------------------------------------------------------------------- webhook

def test_webhook_is_signed_per_standard_webhooks(hook):
    channel = webhook(hook.url)
    alert = match_alert()
    channel.deliver(alert)
    [request] = hook.wait_for(1)
    assert request["verified"], request["error"]
    assert request["id"] == alert.uid
    assert abs(int(request["timestamp"]) - time.time()) < 5
    assert request["headers"]["content-type"] == "application/json"
    assert request["headers"]["user-agent"] == UA
    assert request["json"] == alert.payload
    assert request["body"] == encode_body(alert.payload)
    # the reference library computes the same signature
    reference = standardwebhooks.Webhook(TEST_SECRET).sign(
        alert.uid, datetime.fromtimestamp(int(request["timestamp"]), tz=UTC), request["body"].decode())
    assert request["signature"] == reference
    channel.close()


def test_webhook_id_and_body_are_stable_across_retries(hook):
    channel = webhook(hook.url)
    alert = match_alert()
    hook.set_mode("500")
    with pytest.raises(DeliveryRetryable):
        channel.deliver(alert)
    hook.set_mode("ok")
    channel.deliver(alert)
    first, second = hook.wait_for(2)
    assert first["id"] == second["id"] == alert.uid
    assert first["body"] == second["body"]
    assert first["verified"] and second["verified"]


def test_webhook_signature_rejected_with_wrong_secret(hook):
    other = "whsec_" + base64.b64encode(b"another secret of 24 byte").decode()
    webhook(hook.url, secret=other).deliver(match_alert())
    [request] = hook.wait_for(1)
    assert not request["verified"]


def test_webhook_without_secret_sends_no_signature(hook):
    webhook(hook.url, secret=None).deliver(match_alert())
    [request] = hook.wait_for(1)
    assert request["signature"] is None
    assert request["id"] == "msg_2f3a9c1b7d"


def test_sign_matches_spec_example():
    # the example of the Standard Webhooks spec
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_webhook_500_is_retryable(hook):
    hook.set_mode("500")
    with pytest.raises(DeliveryRetryable) as caught:
        webhook(hook.url).deliver(match_alert())
    assert "500" in str(caught.value)
    assert caught.value.retry_after is None


def test_webhook_410_is_gone(hook):
    hook.set_mode("410")
    with pytest.raises(ChannelGone):
        webhook(hook.url).deliver(match_alert())


def test_webhook_429_retry_after_is_parsed(hook):
    hook.respond_with(429, retry_after=42)
    with pytest.raises(DeliveryRetryable) as caught:
        webhook(hook.url).deliver(match_alert())
    assert caught.value.retry_after == 42.0


def test_webhook_503_retry_after_http_date(hook):
    hook.respond_with(503, retry_after="Wed, 21 Oct 2099 07:28:00 GMT")
    with pytest.raises(DeliveryRetryable) as caught:
        webhook(hook.url).deliver(match_alert())
    assert caught.value.retry_after > 3600


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_webhook_other_4xx_is_permanent(hook, status):
    hook.respond_with(status, body=b'{"error":"bad payload"}')
    with pytest.raises(DeliveryPermanent) as caught:
        webhook(hook.url).deliver(match_alert())
    assert str(status) in str(caught.value)
    assert "bad payload" in str(caught.value)


def test_webhook_408_is_retryable(hook):
    hook.set_mode("408")
    with pytest.raises(DeliveryRetryable):
        webhook(hook.url).deliver(match_alert())


def test_webhook_redirect_is_permanent_and_not_followed(hook):
    hook.set_mode("redirect")
    with pytest.raises(DeliveryPermanent) as caught:
        webhook(hook.url).deliver(match_alert())
    assert "redirect" in str(caught.value)
    assert len(hook.received) == 1


def test_webhook_refused_port_is_retryable():
    with pytest.raises(DeliveryRetryable) as caught:
        webhook(f"http://127.0.0.1:{free_port()}/hook").deliver(match_alert())
    assert "ConnectError" in str(caught.value)


def test_webhook_timeout_is_retryable(hook):
    hook.set_mode("hang")
    started = time.monotonic()
    with pytest.raises(DeliveryRetryable) as caught:
        webhook(hook.url, timeout=0.5).deliver(match_alert())
    assert time.monotonic() - started < 3
    assert "timed out" in str(caught.value)
    hook.release()


def test_webhook_errors_hide_secret_and_url_path(hook):
    url = hook.url + "/T0K3N-in-path?token=abcdef"
    for mode in ("500", "404", "410", "redirect"):
        hook.set_mode(mode)
        with pytest.raises((DeliveryRetryable, DeliveryPermanent, ChannelGone)) as caught:
            webhook(url).deliver(match_alert())
        text = str(caught.value) + repr(caught.value)
        assert TEST_SECRET not in text and TEST_SECRET[6:] not in text
        assert "T0K3N" not in text and "abcdef" not in text


def test_bad_secret_is_config_error_without_secret():
    with pytest.raises(ConfigError) as caught:
        WebhookChannel("hook", "http://127.0.0.1:9/", secret="whsec_***not base64***")
    assert "***not base64***" not in str(caught.value)


def test_parse_retry_after():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT") == 0.0


# --------------------------------------------------------------------------- email

def test_email_has_text_and_escaped_html(smtp):
    channel = email_channel(smtp.port, username="monitor", password=SMTP_PASSWORD)
    alert = match_alert(title="Truce <script>alert(1)</script> & talks")
    channel.deliver(alert)
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "[Cairo truce talks] Truce <script>alert(1)</script> & talks"
    assert message["Message-ID"] == "<msg_2f3a9c1b7d@example.org>"
    assert message["To"] == "desk@example.org"
    assert smtp.envelopes[0]["login"] == "monitor"
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; talks" in page
    assert '<a href="https://www.aljazeera.com/news/2026/11/26/hamas-cairo">' in page
    assert "Reuters" in page and 'href="https://www.reuters.com/world/middle-east/cairo-talks"' in page
    for part in (text, page):
        assert "2026-11-26 06:58 UTC" in part
        assert "Al Jazeera" in part
        assert "cairo" in part and "Cairo" in part and "96" in part
        assert "هدنة" in part
    assert "https://www.aljazeera.com/news/2026/11/26/hamas-cairo" in text


class _TagBalance(HTMLParser):
    """The elements a page opens and does not close (void elements aside)."""

    VOID = frozenset({"meta", "br", "img", "hr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, (self.open, tag)
        self.open.pop()


def test_email_is_from_the_sender_and_both_parts_carry_every_field(smtp):
    email_channel(smtp.port).deliver(match_alert())
    [message] = smtp.wait_for(1)
    assert message["From"] == "monitor@example.org"
    text = message.get_body(("plain",)).get_content()
    assert text.splitlines()[:8] == [
        "Hamas delegation arrives in Cairo for truce talks", "",
        "Link: https://www.aljazeera.com/news/2026/11/26/hamas-cairo", "Source: Al Jazeera",
        "Published: 2026-11-26 06:58 UTC", "Storyline: Cairo truce talks",
        "Why: cairo-talks: rules, score 96.4: Cairo, truce", ""]
    assert ("- Reuters: Hamas team in Cairo for ceasefire talks "
            "<https://www.reuters.com/world/middle-east/cairo-talks>") in text
    page = message.get_body(("html",)).get_content()
    assert "<li>Why: cairo-talks: rules, score 96.4: Cairo, truce</li>" in page
    assert "<li>Storyline: Cairo truce talks</li>" in page
    for part in (text, page):  # the footer names the alert, for the desk to quote
        assert "ceasefire-monitor alert msg_2f3a9c1b7d" in part
    assert message["Auto-Submitted"] == "auto-generated"  # RFC 3834: no vacation replies
    balance = _TagBalance()
    balance.feed(page)
    assert balance.open == []  # every list and paragraph is closed


def test_an_alert_with_missing_fields_still_reads(smtp):
    """No title, a storyline without a name, a time without a zone, another source without a
    title: each part says so plainly rather than leaving a blank."""
    alert = match_alert(title="")
    data = alert.payload["data"]
    data["storyline"] = {"id": "cairo-talks"}
    data["item"]["published"] = "2026-11-26T06:58:00"  # naive: UTC
    data["sources"][1]["title"] = ""
    email_channel(smtp.port).deliver(alert)
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "[cairo-talks] (no title)"
    text = message.get_body(("plain",)).get_content()
    assert text.splitlines()[0] == "(no title)"
    assert "Storyline: cairo-talks" in text and "Published: 2026-11-26 06:58 UTC" in text
    page = message.get_body(("html",)).get_content()
    assert ">(no title)</a></h2>" in page and "<li>Published: 2026-11-26 06:58 UTC</li>" in page
    assert ('<li>Reuters: <a href="https://www.reuters.com/world/middle-east/cairo-talks">'
            "https://www.reuters.com/world/middle-east/cairo-talks</a></li>") in page
    assert console_line(alert).startswith("ALERT [cairo-talks] (no title) — Al Jazeera 2026-11-26 06:58 UTC")


def test_a_time_without_a_zone_is_utc_whatever_the_machine_zone(smtp, monkeypatch):
    alert = match_alert()
    alert.payload["data"]["item"]["published"] = "2026-11-26T06:58:00"
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        email_channel(smtp.port).deliver(alert)
        line = console_line(alert)
    finally:
        monkeypatch.undo()
        time.tzset()
    [message] = smtp.wait_for(1)
    assert "Published: 2026-11-26 06:58 UTC" in message.get_body(("plain",)).get_content()
    assert "2026-11-26 06:58 UTC" in line


def test_an_alert_without_a_storyline_name_or_id_is_still_labelled(smtp):
    """The storyline's name, else its id in the payload, else the alert's storyline, else a
    plain word: never "None", never an empty bracket."""
    alert = match_alert()
    alert.payload["data"]["storyline"] = {}
    assert subject_of(alert) == "[cairo-talks] Hamas delegation arrives in Cairo for truce talks"
    assert console_line(alert).startswith("ALERT [cairo-talks] Hamas")
    orphan = replace(alert, storyline_id=None)
    assert subject_of(orphan) == "[alert] Hamas delegation arrives in Cairo for truce talks"
    assert console_line(orphan).startswith("ALERT [?] Hamas")
    email_channel(smtp.port).deliver(orphan)
    [message] = smtp.wait_for(1)
    assert "None" not in message.get_body(("plain",)).get_content()
    assert "None" not in message.get_body(("html",)).get_content()


@pytest.mark.parametrize("kind", ["feed.down", "feed.recovered"])
def test_feed_health_email_says_what_happened(smtp, kind):
    alert = feed_down_alert()
    alert.payload["type"] = kind
    alert = replace(alert, kind=kind.replace(".", "_"))
    email_channel(smtp.port).deliver(alert)
    [message] = smtp.wait_for(1)
    text = message.get_body(("plain",)).get_content()
    page = message.get_body(("html",)).get_content()
    down = kind == "feed.down"
    assert message["Subject"] == ("[feed down] Al Jazeera" if down else "[feed recovered] Al Jazeera")
    assert ("The feed Al Jazeera is failing." if down else "The feed Al Jazeera works again.") in text
    assert "URL: https://www.aljazeera.com/xml/rss/all.xml" in text
    assert f"<p>The feed <b>Al Jazeera</b> {'is failing' if down else 'works again'}.</p>" in page
    for part in (text, page):
        assert ("Consecutive errors: 5" in part) is down
        assert ("Last error: fetch.timeout: timed out after 30s" in part) is down
    balance = _TagBalance()
    balance.feed(page)
    assert balance.open == []


def test_a_link_with_spaces_around_it_is_still_a_link(smtp):
    email_channel(smtp.port).deliver(match_alert(link="  https://www.aljazeera.com/news/x \n"))
    [message] = smtp.wait_for(1)
    assert '<h2><a href="https://www.aljazeera.com/news/x">' in message.get_body(("html",)).get_content()


def test_message_id_domain_is_made_safe_from_the_sender(smtp):
    """The Message-ID takes the sender's domain, stripped of what a header cannot carry."""
    email_channel(smtp.port, sender="Desk Monitor <monitor@example.org>").deliver(match_alert(uid="msg_1 2"))
    [message] = smtp.wait_for(1)
    assert message["Message-ID"] == "<msg_1-2@example.org>"
    assert b"\nMessage-ID: <msg_1-2@example.org>\r\n" in smtp.envelopes[0]["data"]  # as sent


def test_email_javascript_link_is_not_a_link(smtp):
    email_channel(smtp.port).deliver(match_alert(link="javascript:alert(document.cookie)"))
    [message] = smtp.wait_for(1)
    page = message.get_body(("html",)).get_content()
    assert "href=\"javascript" not in page.lower()
    assert "<a href" not in page.split("Reuters")[0]  # the headline is plain text
    assert "javascript:alert(document.cookie)" in page  # shown as text


@pytest.mark.parametrize("link", ["http:///x", "https:example.org/truce", "https://"])
def test_a_link_without_a_host_is_text_not_a_link(link):
    message = build_email(match_alert(link=link), sender="monitor@example.org", to=["desk@example.org"])
    page = message.get_body(("html",)).get_content()
    assert f'href="{link}"' not in page
    assert f"({link})" in page  # shown as text, after the headline


def test_a_feed_alert_without_a_url_says_none_of_none():
    alert = feed_down_alert()
    alert.payload["data"]["feed"].pop("url")
    message = build_email(alert, sender="monitor@example.org", to=["desk@example.org"])
    text = message.get_body(("plain",)).get_content()
    assert "URL: \n" in text.replace("\r\n", "\n") and "None" not in text


def test_email_header_injection_is_stripped(smtp):
    email_channel(smtp.port).deliver(match_alert(title="Talks\r\nBcc: victim@example.org"))
    [message] = smtp.wait_for(1)
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"]
    assert smtp.envelopes[0]["rcpt_tos"] == ["desk@example.org"]


def test_email_resend_has_same_message_id(smtp):
    channel = email_channel(smtp.port)
    channel.deliver(match_alert())
    channel.deliver(match_alert())
    first, second = smtp.wait_for(2)
    assert first["Message-ID"] == second["Message-ID"]


def test_email_feed_down_subject(smtp):
    email_channel(smtp.port).deliver(feed_down_alert())
    [message] = smtp.wait_for(1)
    assert message["Subject"] == "[feed down] Al Jazeera"
    assert "fetch.timeout" in message.get_body(("plain",)).get_content()


@pytest.mark.parametrize("stage", ["data", "rcpt"])
def test_smtp_451_is_retryable(smtp, stage):
    smtp.set_mode("451", stage=stage)
    with pytest.raises(DeliveryRetryable) as caught:
        email_channel(smtp.port).deliver(match_alert())
    assert "451" in str(caught.value)


@pytest.mark.parametrize("stage", ["data", "rcpt"])
@pytest.mark.parametrize("reply, retryable", [("400", True), ("499", True), ("500", False)])
def test_smtp_4xx_is_retried_and_5xx_is_not_at_the_boundary(smtp, stage, reply, retryable):
    smtp.set_mode(reply, stage=stage)
    with pytest.raises(DeliveryRetryable if retryable else DeliveryPermanent) as caught:
        email_channel(smtp.port).deliver(match_alert())
    assert reply in str(caught.value)


@pytest.mark.parametrize("stage", ["data", "rcpt"])
def test_smtp_550_is_permanent_with_reason(smtp, stage):
    smtp.set_mode("550", stage=stage)
    with pytest.raises(DeliveryPermanent) as caught:
        email_channel(smtp.port).deliver(match_alert())
    assert "550" in str(caught.value) and "rejected" in str(caught.value)


def test_a_long_smtp_refusal_is_kept_to_300_characters(smtp):
    smtp.set_mode("550-long")
    with pytest.raises(DeliveryPermanent) as caught:
        email_channel(smtp.port).deliver(match_alert())
    reason = str(caught.value).split(": the server answered ", 1)[-1]
    assert reason.startswith("550 5.7.1 policy policy") and reason.endswith("…")
    assert len(reason) == 300


def test_smtp_down_is_retryable():
    with pytest.raises(DeliveryRetryable):
        email_channel(free_port()).deliver(match_alert())


def test_smtp_bad_password_is_permanent_without_password(smtp):
    wrong = "wrong-" + SMTP_PASSWORD
    with pytest.raises(DeliveryPermanent) as caught:
        email_channel(smtp.port, username="monitor", password=wrong).deliver(match_alert())
    assert wrong not in str(caught.value) and SMTP_PASSWORD not in str(caught.value)


def test_smtp_errors_never_show_the_password_even_when_the_server_echoes_it():
    """Whatever the server's reply says, the password is masked in the error that reaches the
    log and the outbox (here the password is the very word the server answers with)."""
    with SMTPReceiver(credentials=("monitor", "rejected")) as server:
        server.set_mode("550")
        with pytest.raises(DeliveryPermanent) as caught:
            email_channel(server.port, username="monitor", password="rejected").deliver(match_alert())
    assert "rejected" not in str(caught.value) and "550 5.7.1 ***" in str(caught.value)


def test_smtp_starttls_required_but_not_offered_is_permanent(smtp):
    with pytest.raises(DeliveryPermanent) as caught:
        email_channel(smtp.port, starttls=True).deliver(match_alert())
    assert "STARTTLS" in str(caught.value)
    assert smtp.messages == []


def test_smtp_starttls_and_login():
    with SMTPReceiver(credentials=("monitor", SMTP_PASSWORD), tls="starttls") as server:
        channel = email_channel(server.port, starttls=True, username="monitor",
                                password=SMTP_PASSWORD, ssl_context=server.client_context())
        channel.deliver(match_alert())
        [message] = server.wait_for(1)
        assert message["Subject"].startswith("[Cairo truce talks]")


def test_smtp_implicit_ssl():
    with SMTPReceiver(tls="ssl") as server:
        channel = email_channel(server.port, ssl=True, ssl_context=server.client_context())
        channel.deliver(match_alert())
        assert len(server.wait_for(1)) == 1


def test_smtp_untrusted_certificate_is_retryable():
    with SMTPReceiver(tls="starttls") as server:
        with pytest.raises(DeliveryRetryable) as caught:
            email_channel(server.port, starttls=True).deliver(match_alert())
        assert "SSL" in str(caught.value)
        assert server.messages == []


# --------------------------------------------------------------------------- console

def test_console_line_format():
    stream = io.StringIO()
    ConsoleChannel("console", stream=stream).deliver(match_alert())
    assert stream.getvalue() == (
        "ALERT [cairo-talks] Hamas delegation arrives in Cairo for truce talks — Al Jazeera "
        "2026-11-26 06:58 UTC https://www.aljazeera.com/news/2026/11/26/hamas-cairo "
        "(cairo-talks: rules, score 96.4: Cairo, truce)\n")


def test_an_alert_says_who_decided_and_the_words_that_weighed_most_once_each():
    from monitor.payload import match_payload

    hits = [{"term": "hostage", "found": "Hostages", "score": 100.0, "field": "title"},
            {"term": "hostages", "found": "Hostages", "score": 100.0, "field": "title"},
            {"term": "truce", "found": "truce", "score": 93.33333, "field": "title"}]
    body = match_payload(
        timestamp=datetime(2026, 11, 26, 7, 0, tzinfo=UTC),
        item={"title": "Hamas Set to Free Third Group of Hostages as Truce Holds", "url": None,
              "summary": "", "published": "2026-11-26T06:58:00+00:00", "source": "NYT",
              "feed_url": "https://nyt.example/rss"},
        storylines=[{"id": "captive-releases", "name": "Captive releases", "score": 84.04,
                     "hits": hits, "decided_by": "model", "evidence": ["group of", "hostages as"]},
                    {"id": "ceasefire-talks", "name": "Talks", "score": 100.0, "hits": hits,
                     "decided_by": "rules", "evidence": []}],
        story_id=3, sources=[])
    data = body["data"]
    assert data["decided_by"] == "model" and data["words"] == ["group of", "hostages as"]
    assert [t["found"] for t in data["matched_terms"]] == ["Hostages", "truce"]  # each word once
    assert data["matched_terms"][0]["term"] == "hostage / hostages"
    assert data["matched_terms"][1]["score"] == 93.3
    alert = Alert(id=1, uid="msg_1", channel="c", kind="storyline.match",
                  storyline_id="captive-releases", story_id=3,
                  created_at=datetime(2026, 11, 26, 7, 0, tzinfo=UTC), payload=body)
    line = console_line(alert)
    assert line.endswith("(captive-releases: model, score 84.0: group of, hostages as; "
                         "ceasefire-talks: rules, score 100.0: Hostages, truce)")


def test_console_line_strips_control_characters():
    line = console_line(match_alert(title="Talks\x1b[31m red\nnext line"))
    assert "\x1b" not in line and "\n" not in line


def test_console_feed_down():
    line = console_line(feed_down_alert())
    assert line.startswith("FEED DOWN [Al Jazeera] https://www.aljazeera.com/xml/rss/all.xml")
    assert "5 consecutive errors" in line


# --------------------------------------------------------------------------- apprise

def test_apprise_json_to_receiver():
    with WebhookReceiver(secret=None) as hook:
        url = f"json://127.0.0.1:{hook.port}/"
        channel = AppriseChannel("chat", [url], timeout=5.0)
        channel.deliver(match_alert())
        [request] = hook.wait_for(1)
        assert request["json"]["title"] == \
            "[Cairo truce talks] Hamas delegation arrives in Cairo for truce talks"
        assert "https://www.aljazeera.com/news/2026/11/26/hamas-cairo" in request["json"]["message"]


def test_apprise_failure_is_retryable_without_urls():
    with WebhookReceiver(secret=None) as hook:
        hook.set_mode("500")
        url = f"json://127.0.0.1:{hook.port}/?token=S3CRET-TOKEN"
        channel = AppriseChannel("chat", [url], timeout=5.0)
        with pytest.raises(DeliveryRetryable) as caught:
            channel.deliver(match_alert())
        assert "apprise could not notify" in str(caught.value)
        assert "S3CRET" not in str(caught.value) and str(hook.port) not in str(caught.value)


def test_apprise_retry_skips_urls_that_succeeded():
    with WebhookReceiver(secret=None) as good, WebhookReceiver(secret=None) as bad:
        bad.set_mode("500")
        channel = AppriseChannel("chat", [f"json://127.0.0.1:{good.port}/",
                                          f"json://127.0.0.1:{bad.port}/"], timeout=5.0)
        with pytest.raises(DeliveryRetryable):
            channel.deliver(match_alert())
        bad.set_mode("ok")
        channel.deliver(match_alert())
        assert len(good.received) == 1
        assert len(bad.received) == 2


def test_apprise_bad_url_is_config_error_without_url():
    with pytest.raises(ConfigError) as caught:
        AppriseChannel("chat", ["nosuchservice://tok3n@host/"])
    assert "tok3n" not in str(caught.value)


# --------------------------------------------------------------------------- make_channel

def test_make_channel_builds_each_type(hook):
    configs = [
        ChannelConfig(type="webhook", name="w", url=hook.url, secret=TEST_SECRET, timeout=2.0),
        ChannelConfig(type="email", name="e", host="127.0.0.1", port=25, sender="a@example.org",
                      to=("b@example.org",)),
        ChannelConfig(type="console", name="c"),
    ]
    stream = io.StringIO()
    channels = [make_channel(c, user_agent=UA, console_stream=stream) for c in configs]
    assert [type(c) for c in channels] == [WebhookChannel, EmailChannel, ConsoleChannel]
    for channel in channels:
        assert isinstance(channel, Channel)
    channels[0].deliver(match_alert())
    assert hook.wait_for(1)[0]["verified"]
    channels[2].deliver(match_alert())
    assert stream.getvalue().startswith("ALERT [cairo-talks]")
    for channel in channels:
        channel.close()
    assert TEST_SECRET not in repr(channels[0]) and TEST_SECRET not in repr(configs[0])
