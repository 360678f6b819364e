"""Secrets never leak; alert content arrives inert; signatures verify with the reference
package and with the README's own receiver example. Real CLI, real receivers."""

from __future__ import annotations

import base64
import random
import re
from pathlib import Path

import standardwebhooks
from faultkit import Kit, email, headline, webhook
from feedserver import FeedServer, rss
from receivers import TEST_SECRET, SMTPReceiver, WebhookReceiver, free_port

SMTP_PASSWORD = "pw-Zq8v!s3cr3t-smtp"
README = Path(__file__).parent.parent / "README.md"


def _secret_forms() -> list[str]:
    raw = TEST_SECRET.removeprefix("whsec_")
    return [TEST_SECRET, raw, base64.b64decode(raw).hex(), SMTP_PASSWORD]


def test_a_chat_services_token_is_never_in_the_log_of_a_run_under_vv(tmp_path):
    """An Apprise URL holds the service's token (often in the path of the request it makes):
    -vv logs the HTTP libraries' debug lines, and none of them may carry it."""
    token = "tok-9fQ2xZ7kLw4PbN8s"
    with FeedServer() as server, WebhookReceiver(secret=None) as chat:
        server.set_feed("/a.xml", rss([headline(random.Random(3), n) for n in range(2)]))
        kit = Kit(tmp_path, {})
        kit.write(feeds=[("a", server.url("/a.xml"))],
                  channels=f"""
[[alerts]]
type = "apprise"
name = "chat"
urls = ["json://127.0.0.1:{chat.port}/hooks/{token}"]
""")
        result = kit.cli("-vv", "run", "--once")
        assert result.returncode == 0, result.stderr
        assert chat.received and all(r["path"].endswith(token) for r in chat.received)
    assert "alert(s) sent" in result.stderr and "DEBUG" in result.stderr  # -vv did log
    assert token not in result.stderr + result.stdout


def test_secrets_never_in_logs_json_or_errors_of_a_run_with_failures(tmp_path):
    wrong = WebhookReceiver(secret=TEST_SECRET)
    with FeedServer() as server, wrong as hook, SMTPReceiver(credentials=("desk", "other")) as smtp:
        server.set_feed("/a.xml", rss([headline(random.Random(2), n) for n in range(2)]))
        server.set_response("/down.xml", 503, b"no", headers={"Retry-After": "5"})
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET, "SMTP_PASSWORD": SMTP_PASSWORD})
        dead_hook = f"http://127.0.0.1:{free_port()}/hook/{TEST_SECRET}"  # a token in the URL
        kit.write(feeds=[("a", server.url("/a.xml")), ("down", server.url("/down.xml"))],
                  channels=webhook(hook.url) + webhook(dead_hook, name="dead")
                  + email(smtp.port, password_var="SMTP_PASSWORD"),
                  settings="feed_down_after = 1")
        hook.set_mode("500")
        kit.cli("-vv", "run", "--once")  # webhook 500, refused, SMTP login refused, feed 503
        hook.set_mode("ok")
        kit.cli("-vv", "run", "--once")
        with kit.start("-vv") as daemon:
            hook.wait_for(3, timeout=20)
            daemon.stop()
        for args in (("alerts", "--json"), ("alerts",), ("alerts", "--status", "pending", "--json"),
                     ("feeds", "--json"), ("feeds",), ("matches", "--json"), ("storylines", "--json")):
            assert kit.cli(*args).returncode == 0, args
        stored = kit.rows("SELECT last_error FROM alerts UNION ALL SELECT last_error FROM channels")
    printed = "\n".join(kit.outputs) + kit.logs()
    # The run really had failures of each kind, with messages about them...
    assert "HTTP 500" in printed and "refused" in printed.lower()
    assert "authentication" in printed.lower() or "535" in printed
    assert "down" in printed
    # ...and no secret in any of it, nor in the errors kept in the database.
    errors = " ".join(r["last_error"] or "" for r in stored)
    assert errors
    for secret in _secret_forms():
        assert secret not in printed, secret
        assert secret not in errors, secret
    assert [r for r in hook.received if r["status"] == 200 and r["verified"]]


def test_secret_in_a_bad_config_value_is_not_echoed(tmp_path):
    kit = Kit(tmp_path, {"HOOK_SECRET": "not-a-whsec-" + SMTP_PASSWORD})
    kit.write(feeds=[("a", f"http://127.0.0.1:{free_port()}/a.xml")],
              channels=webhook(f"http://127.0.0.1:{free_port()}/hook"))
    result = kit.cli("run", "--once")
    assert result.returncode == 2 and "alerts[0].secret" in result.stderr
    assert SMTP_PASSWORD not in result.stderr + result.stdout


HOSTILE_TITLE = ('Truce talks in Cairo &lt;script&gt;alert("x")&lt;/script&gt; '
                 '&lt;img src=x onerror="alert(1)"&gt; &lt;a href="javascript:alert(2)"&gt;go&lt;/a&gt;')


def test_email_html_is_inert_and_links_only_http(tmp_path):
    with FeedServer() as server, SMTPReceiver() as smtp, WebhookReceiver() as hook:
        items = [{"title": HOSTILE_TITLE, "link": "javascript:alert(document.cookie)",
                  "guid": "x1", "summary": '<script>steal()</script><img src=x onerror=alert(3)> '
                  'delegation <b onmouseover="alert(4)">talks</b>',
                  "published": headline(random.Random(1), 1)["published"]},
                 {**headline(random.Random(3), 2), "link": "https://news.example/ok?a=1&b=<2>"}]
        server.set_feed("/a.xml", rss(items))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a", server.url("/a.xml"))], channels=email(smtp.port) + webhook(hook.url))
        kit.run_once()
        messages = smtp.wait_for(2)
    assert len(messages) == 2
    for message in messages:
        html_part = message.get_body(("html",)).get_content()
        text_part = message.get_body(("plain",)).get_content()
        lowered = html_part.lower()
        for live in ("<script", "<img", "onerror=", "onmouseover=", "<b ", "javascript:"):
            assert live not in lowered, (live, html_part)
        assert "<" not in message["subject"] and "\n" not in message["subject"]
        for href in re.findall(r'href\s*=\s*["\']?([^"\' >]+)', html_part, re.I):
            assert href.startswith(("http://", "https://")), href
        assert "javascript:" not in text_part.lower()
    for request in hook.received:
        link = request["json"]["data"]["item"]["link"]
        assert link is None or link.startswith(("http://", "https://"))


def _readme_snippets() -> list[str]:
    text = README.read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_signature_verifies_with_reference_package_and_readme_examples(tmp_path):
    with FeedServer() as server, WebhookReceiver() as hook:
        server.set_feed("/a.xml", rss([headline(random.Random(4), 1)]))
        kit = Kit(tmp_path, {"HOOK_SECRET": TEST_SECRET})
        kit.write(feeds=[("a", server.url("/a.xml"))], channels=webhook(hook.url))
        kit.run_once()
    assert len(hook.received) == 1
    snippets = [s for s in _readme_snippets() if "webhook-signature" in s or "Webhook(" in s]
    assert len(snippets) == 2, "the README shows both receiver-side checks"
    reference: dict = {"already_seen": lambda _id: False}
    by_hand: dict = {}
    exec(snippets[0].replace('"whsec_..."', repr(TEST_SECRET)), reference)  # our own README
    exec(snippets[1], by_hand)
    for request in hook.received:
        # The reference package, directly and through the README's handler.
        payload = standardwebhooks.Webhook(TEST_SECRET).verify(request["body"], request["headers"])
        assert payload["type"] == "storyline.match"
        assert reference["handle"](request["body"], request["headers"]) == payload
        assert by_hand["verify"](TEST_SECRET, request["headers"], request["body"])
        forged = request["body"].replace(b"Cairo", b"Kairo")
        assert not by_hand["verify"](TEST_SECRET, request["headers"], forged)
        try:
            standardwebhooks.Webhook(TEST_SECRET).verify(forged, request["headers"])
        except standardwebhooks.webhooks.WebhookVerificationError:
            pass
        else:
            raise AssertionError("a forged body verified")
