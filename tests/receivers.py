"""Real receivers on 127.0.0.1 for tests: a Standard Webhooks endpoint and an SMTP server.

    with WebhookReceiver(secret="whsec_...") as hook:
        hook.set_mode("500")            # or hook.respond_with(429, retry_after=30)
        hook.queue(500, 500, 200)       # the next answers, then back to the mode
        ...
        hook.wait_for(1, timeout=5)
        assert hook.received[0]["verified"]

    with SMTPReceiver() as smtp:
        smtp.set_mode("451")            # "ok" | "451" | "550"; stage="data" or "rcpt"
        smtp.wait_for(1)
        message = smtp.messages[0]      # email.message.EmailMessage

Both are context managers that start on a free port and stop on exit.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections import deque
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import standardwebhooks
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

__all__ = ["SMTPReceiver", "WebhookReceiver", "free_port", "wait_until"]

TEST_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # a throwaway secret for tests


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


# --------------------------------------------------------------------------- webhook

_MODES: dict[str, tuple[int, float | None]] = {
    "ok": (200, None), "204": (204, None), "400": (400, None), "404": (404, None),
    "408": (408, None), "410": (410, None), "429": (429, 30.0), "500": (500, None),
    "502": (502, None), "503": (503, 120.0), "redirect": (302, None),
}


class _Reply:
    def __init__(self, status: int = 200, retry_after: float | str | None = None,
                 body: bytes = b"", hang: bool = False) -> None:
        self.status = status
        self.retry_after = retry_after
        self.body = body
        self.hang = hang


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that give up (timeout tests) reset connections: not worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class WebhookReceiver:
    """A ThreadingHTTPServer that records and verifies Standard Webhooks deliveries.

    ``received`` holds one dict per request: ``id``, ``timestamp``, ``signature``
    (header values or None), ``headers`` (lower-cased), ``body`` (bytes), ``json``
    (parsed or None), ``complete`` (False when the sender went away before the whole body
    arrived: a SIGKILL between headers and body), ``verified`` (bool; False when no secret or
    the body is incomplete), ``error`` (the verification error text), ``method``, ``path``,
    ``status`` (what we answered; None when nobody was left to answer).
    """

    def __init__(self, secret: str | None = TEST_SECRET, *, hang_seconds: float = 10.0) -> None:
        self.secret = secret
        self.hang_seconds = hang_seconds
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._default = _Reply()
        self._queue: deque[_Reply] = deque()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- behaviour

    def respond_with(self, status: int, retry_after: float | str | None = None,
                     body: bytes = b"") -> None:
        """Answer every following request with ``status`` (and ``Retry-After``)."""
        with self._lock:
            self._default = _Reply(status, retry_after, body)

    def set_mode(self, mode: str) -> None:
        """``ok``, ``400``, ``404``, ``408``, ``410``, ``429`` (Retry-After 30), ``500``, ``502``,
        ``503`` (Retry-After 120), ``redirect`` (302) or ``hang`` (never answers in time)."""
        with self._lock:
            if mode == "hang":
                self._release.clear()
                self._default = _Reply(hang=True)
            elif mode in _MODES:
                self._release.set()
                status, retry_after = _MODES[mode]
                self._default = _Reply(status, retry_after)
            else:
                raise ValueError(f"unknown mode {mode!r}; expected hang or one of {sorted(_MODES)}")

    def queue(self, *statuses: int | str) -> None:
        """The next answers, in order (a status, or a mode name); then the mode again."""
        with self._lock:
            for status in statuses:
                if status == "hang":
                    self._queue.append(_Reply(hang=True))
                elif isinstance(status, str):
                    code, retry_after = _MODES[status]
                    self._queue.append(_Reply(code, retry_after))
                else:
                    self._queue.append(_Reply(status))

    def release(self) -> None:
        """Let hanging requests finish (with 200)."""
        self._release.set()

    # -- inspection

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until ``n`` requests were received; return them all (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} webhook requests, got {len(self.received)}")
                self._changed.wait(left)
            return list(self.received)

    # -- lifecycle

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

            do_PUT = do_POST
            do_GET = do_POST

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the request

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        complete = len(body) == length
        verified, error = False, None
        if not complete:
            error = f"incomplete body: {len(body)} of {length} bytes before the sender went away"
        elif self.secret:
            try:
                standardwebhooks.Webhook(self.secret).verify(body, headers)
                verified = True
            except Exception as failure:  # WebhookVerificationError, bad base64...
                error = f"{type(failure).__name__}: {failure}"
        else:
            error = "no secret configured"
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        # Nobody is left to answer an incomplete request, and no real receiver would act on it;
        # it takes no queued answer.
        reply = None
        if complete:
            with self._lock:
                reply = self._queue.popleft() if self._queue else self._default
        record = {
            "method": handler.command, "path": handler.path,
            "id": headers.get("webhook-id"), "timestamp": headers.get("webhook-timestamp"),
            "signature": headers.get("webhook-signature"), "headers": headers, "body": body,
            "json": parsed, "complete": complete, "verified": verified, "error": error,
            "status": None if reply is None else 200 if reply.hang else reply.status,
            "at": time.time(),
        }
        with self._changed:
            self.received.append(record)
            self._changed.notify_all()
        if reply is None:
            handler.close_connection = True
            return
        if reply.hang:
            self._release.wait(self.hang_seconds)
            reply = _Reply(200)
        answer = reply.body or (b'{"ok":true}' if reply.status < 300 else b'{"error":"simulated"}')
        try:
            handler.send_response(reply.status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(answer)))
            if reply.retry_after is not None:
                value = reply.retry_after
                handler.send_header("retry-after",
                                    value if isinstance(value, str) else str(int(value)))
            if 300 <= reply.status < 400:
                handler.send_header("location", f"http://127.0.0.1:{self.port}/elsewhere")
            handler.end_headers()
            handler.wfile.write(answer)
        except OSError:  # the client gave up (timeout test)
            handler.close_connection = True


# --------------------------------------------------------------------------- SMTP

class _SMTPHandler:
    def __init__(self, receiver: SMTPReceiver) -> None:
        self.receiver = receiver

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.receiver._reply_for("rcpt")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.receiver._reply_for("data")
        if reply:
            return reply
        self.receiver._record(envelope, session)
        return "250 Message accepted for delivery"


class SMTPReceiver:
    """An aiosmtpd server on 127.0.0.1 recording every accepted message.

    ``messages``: parsed ``EmailMessage`` objects (policy ``email.policy.default``);
    ``envelopes``: dicts with ``mail_from``, ``rcpt_tos``, ``data`` (bytes), ``login``.
    ``credentials=("user", "pass")`` turns on AUTH (LOGIN/PLAIN, allowed without TLS).
    ``tls=None`` (default): no STARTTLS offered, channels under test need ``starttls=False``;
    ``tls="starttls"``: STARTTLS offered; ``tls="ssl"``: implicit TLS (like port 465). TLS uses
    a throwaway self-signed certificate for 127.0.0.1 (made with the ``openssl`` CLI); a client
    trusts it with ``receiver.client_context()``.
    """

    REPLIES: ClassVar[dict[str, str]] = {"451": "451 4.3.0 try later", "550": "550 5.7.1 rejected",
               "452": "452 4.2.2 mailbox full", "554": "554 5.7.1 message refused",
               "500": "500 5.5.2 syntax error", "499": "499 4.0.0 odd but temporary",
               "400": "400 4.0.0 temporary", "550-long": "550 5.7.1 " + "policy " * 100}

    def __init__(self, credentials: tuple[str, str] | None = None, *,
                 tls: str | None = None) -> None:
        if tls not in (None, "starttls", "ssl"):
            raise ValueError("tls is None, 'starttls' or 'ssl'")
        self.credentials = credentials
        self.tls = tls
        self._certdir: str | None = None
        self.messages: list[EmailMessage] = []
        self.envelopes: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._mode = "ok"
        self._stage = "data"
        self._queue: deque[str] = deque()
        self._controller: Controller | None = None
        self.port = 0

    def set_mode(self, mode: str, stage: str = "data") -> None:
        """``ok``, ``451`` (4.3.0 try later), ``550`` (5.7.1 rejected), ``452``, ``554``, ``500``,
        ``499``, ``400``, ``550-long`` (a 700-character reason); ``stage`` is where the refusal
        happens: ``data`` or ``rcpt``."""
        if mode != "ok" and mode not in self.REPLIES:
            raise ValueError(f"unknown mode {mode!r}")
        if stage not in ("data", "rcpt"):
            raise ValueError("stage is data or rcpt")
        with self._lock:
            self._mode, self._stage = mode, stage

    def queue(self, *modes: str) -> None:
        """Modes for the next messages (at DATA), then back to ``set_mode``'s."""
        with self._lock:
            self._queue.extend(modes)

    def _reply_for(self, stage: str) -> str | None:
        with self._lock:
            if stage == "data" and self._queue:
                mode = self._queue.popleft()
                return None if mode == "ok" else self.REPLIES[mode]
            if self._mode != "ok" and self._stage == stage:
                return self.REPLIES[self._mode]
        return None

    def _record(self, envelope: Any, session: Any) -> None:
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        login = getattr(session, "auth_data", None)
        with self._changed:
            self.messages.append(parsed)  # type: ignore[arg-type]
            self.envelopes.append({"mail_from": envelope.mail_from,
                                   "rcpt_tos": list(envelope.rcpt_tos), "data": data,
                                   "login": login})
            self._changed.notify_all()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} messages, got {len(self.messages)}")
                self._changed.wait(left)
            return list(self.messages)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword) and self.credentials is not None:
            user, password = self.credentials
            if auth_data.login.decode() == user and auth_data.password.decode() == password:
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    @property
    def certfile(self) -> str:
        assert self._certdir is not None, "tls not enabled"
        return f"{self._certdir}/cert.pem"

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this receiver's certificate (and checks the host name)."""
        return ssl.create_default_context(cafile=self.certfile)

    def _server_context(self) -> ssl.SSLContext:
        if shutil.which("openssl") is None:
            import pytest

            pytest.skip("the openssl command is needed to make a test certificate")
        self._certdir = tempfile.mkdtemp(prefix="smtp-receiver-")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", f"{self._certdir}/key.pem", "-out", f"{self._certdir}/cert.pem",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(f"{self._certdir}/cert.pem", f"{self._certdir}/key.pem")
        return context

    def start(self) -> SMTPReceiver:
        self.port = free_port()
        options: dict[str, Any] = {}
        if self.credentials is not None:
            options = {"authenticator": self._authenticate, "auth_require_tls": False,
                       "auth_required": False}
        if self.tls == "starttls":
            options["tls_context"] = self._server_context()
        elif self.tls == "ssl":
            options["ssl_context"] = self._server_context()
            options["server_hostname"] = "127.0.0.1"
        self._controller = Controller(_SMTPHandler(self), hostname="127.0.0.1", port=self.port,
                                      decode_data=False, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._certdir is not None:
            shutil.rmtree(self._certdir, ignore_errors=True)
            self._certdir = None

    def __enter__(self) -> SMTPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

