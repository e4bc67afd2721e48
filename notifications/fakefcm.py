"""A stand-in for FCM's HTTP v1 API and Google's OAuth token endpoint, for tests and the demo.

The real firebase-admin talks to it: the service account's ``token_uri`` points here for the
OAuth token, and the sender's ``endpoint`` (or :func:`notifications.fcm.point_firebase_admin_at`)
for sends. Answers use FCM's real success and error bodies, so the sender's classification is
tested against what firebase-admin makes of them, not against our guess of it.

Run ``python -m notifications.fakefcm --port 8765 [--log FILE] [--service-account FILE]``.

Control API (JSON):

- ``POST /_control/tokens/{token}`` ``{"error": "UNREGISTERED", "retry_after": 60,
  "delay_s": 0}``; ``{"error": null}`` makes the token healthy again. Tokens starting with
  ``fake-dead-`` are UNREGISTERED from the start, so demo data can include dead phones.
- ``POST /_control/outage`` ``{"seconds": 5, "error": "UNAVAILABLE"}``: every send fails.
- ``GET /_control/messages`` lists delivered messages, ``DELETE`` clears them.
- ``GET /_control/stats`` counts requests, deliveries, failures and token fetches.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, unquote

DEAD_TOKEN_PREFIX = "fake-dead-"
DEFAULT_PROJECT = "volunteer-hub-demo"
_SEND_PATH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")
_TOKEN_CONTROL = re.compile(r"^/_control/tokens/(?P<token>.+)$")
_DURATION = re.compile(r"^\d+(\.\d{1,9})?s$")
_FCM_DETAIL_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


@dataclass(frozen=True)
class FcmErrorSpec:
    """One of FCM's documented error answers."""

    http_status: int
    status: str
    fcm_code: str | None
    message: str


ERRORS: dict[str, FcmErrorSpec] = {
    "UNREGISTERED": FcmErrorSpec(
        404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."
    ),
    # Older FCM answers for a stale token carried no FcmError detail at all.
    "NOT_FOUND": FcmErrorSpec(404, "NOT_FOUND", None, "Requested entity was not found."),
    "INVALID_ARGUMENT": FcmErrorSpec(
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "SENDER_ID_MISMATCH": FcmErrorSpec(
        403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch"
    ),
    "QUOTA_EXCEEDED": FcmErrorSpec(
        429,
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
        "Quota exceeded for quota metric 'Send requests per minute'.",
    ),
    "UNAVAILABLE": FcmErrorSpec(
        503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."
    ),
    "INTERNAL": FcmErrorSpec(500, "INTERNAL", "INTERNAL", "Internal error encountered."),
    "THIRD_PARTY_AUTH_ERROR": FcmErrorSpec(
        401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push."
    ),
}
_DEFAULT_RETRY_AFTER = {"QUOTA_EXCEEDED": 60}


@dataclass(frozen=True)
class _TokenRule:
    error: str | None
    retry_after: int | None
    delay_s: float


class FakeFcm:
    """The fake server; ``start()`` runs it on a daemon thread and returns its base URL."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log: TextIO | None = None,
        project_id: str = DEFAULT_PROJECT,
    ) -> None:
        self.project_id = project_id
        self._address = (host, port)
        self._log = log
        self._lock = threading.Lock()
        self._rules: dict[str, _TokenRule] = {}
        self._outage: tuple[float, str, int | None] | None = None
        self._messages: list[dict[str, Any]] = []
        self._access_tokens: set[str] = set()
        self._counter = itertools.count(1)
        self._generation = 0
        self._stats = {"send_requests": 0, "delivered": 0, "failed": 0, "token_requests": 0}
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        """Listen and serve on a daemon thread; the base URL to give the sender."""
        self._server = _Server(self._address, _Handler, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-fcm", daemon=True
        )
        self._thread.start()
        return self.base_url

    def serve_forever(self) -> None:
        """Serve on the calling thread, for ``python -m notifications.fakefcm``."""
        self._server = _Server(self._address, _Handler, self)
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections, as a crashed FCM would."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake FCM is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def write_service_account(self, path: str | Path) -> dict[str, str]:
        """A service-account file whose token endpoint is this server."""
        return make_service_account(path, self.token_uri, self.project_id)

    # -- fault injection ----------------------------------------------------------------------

    def set_token_error(
        self, token: str, error: str | None, *, retry_after: int | None = None, delay_s: float = 0
    ) -> None:
        """Answer every send to ``token`` with ``error`` (a key of ``ERRORS``), after a delay.

        :raise ValueError: unknown error name.
        """
        if error is not None and error not in ERRORS:
            raise ValueError(f"unknown FCM error {error!r}; known: {', '.join(ERRORS)}")
        with self._lock:
            if error is None and not delay_s:
                self._rules.pop(token, None)
            else:
                self._rules[token] = _TokenRule(error, retry_after, delay_s)

    def outage(
        self, seconds: float, error: str = "UNAVAILABLE", retry_after: int | None = None
    ) -> None:
        """Fail every send with ``error`` for the next ``seconds``.

        :raise ValueError: unknown error name.
        """
        if error not in ERRORS:
            raise ValueError(f"unknown FCM error {error!r}")
        with self._lock:
            self._outage = (time.monotonic() + seconds, error, retry_after)

    # -- inspection ---------------------------------------------------------------------------

    def messages(self) -> list[dict[str, Any]]:
        """Every delivered message: ``name``, ``token``, ``message`` (FCM v1 JSON), ``at``."""
        with self._lock:
            return list(self._messages)

    def clear_messages(self) -> None:
        with self._lock:
            self._messages.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def reset(self) -> None:
        """Forget faults, deliveries and counts, so one server can serve many tests.

        Issued access tokens stay valid, as Google's would within the hour.
        """
        with self._lock:
            self._rules.clear()
            self._outage = None
            self._messages.clear()
            self._stats = dict.fromkeys(self._stats, 0)
            # A send still sleeping on an old delay belongs to the state before the reset; it
            # must not land in the next test's deliveries.
            self._generation += 1

    # -- request handling (called from handler threads) ---------------------------------------

    def _issue_access_token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        # The assertion is signed for Google's token URL; its audience is not checked here.
        grant = form.get("grant_type", [""])[0]
        assertion = form.get("assertion", [""])[0]
        with self._lock:
            self._stats["token_requests"] += 1
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not _jwt_issuer(assertion):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
        token = f"fake-access-{uuid.uuid4().hex}"
        with self._lock:
            self._access_tokens.add(token)
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def _send(
        self, project: str, authorization: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self._stats["send_requests"] += 1
            authorized = authorization.removeprefix("Bearer ") in self._access_tokens
            generation = self._generation
        if not authorized:
            return self._error(ERRORS["THIRD_PARTY_AUTH_ERROR"], None, auth=True)
        message = body.get("message")
        problem = _invalid(message)
        if problem or not isinstance(message, dict):
            spec = FcmErrorSpec(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", problem)
            return self._error(spec, None)
        token = str(message.get("token") or message.get("fid") or "")
        rule = self._rule_for(token)
        if rule.delay_s:
            time.sleep(rule.delay_s)
        if rule.error:
            return self._error(ERRORS[rule.error], rule.retry_after)
        name = f"projects/{project}/messages/0:{time.time_ns()}%{next(self._counter):x}"
        record = {"name": name, "token": token, "message": message, "at": time.time()}
        with self._lock:
            if generation != self._generation:
                return 200, {"name": name}, {}
            self._messages.append(record)
            self._stats["delivered"] += 1
        self._log_delivery(record)
        return 200, {"name": name}, {}

    def _rule_for(self, token: str) -> _TokenRule:
        with self._lock:
            if self._outage and time.monotonic() < self._outage[0]:
                return _TokenRule(self._outage[1], self._outage[2], 0)
            rule = self._rules.get(token)
        if rule is None and token.startswith(DEAD_TOKEN_PREFIX):
            return _TokenRule("UNREGISTERED", None, 0)
        return rule or _TokenRule(None, None, 0)

    def _error(
        self, spec: FcmErrorSpec, retry_after: int | None, *, auth: bool = False
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self._stats["failed"] += 1
        error: dict[str, Any] = {
            "code": spec.http_status,
            "message": spec.message,
            "status": spec.status,
        }
        if spec.fcm_code and not auth:
            error["details"] = [{"@type": _FCM_DETAIL_TYPE, "errorCode": spec.fcm_code}]
        headers = {}
        if retry_after is None and spec.fcm_code:
            retry_after = _DEFAULT_RETRY_AFTER.get(spec.fcm_code)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return spec.http_status, {"error": error}, headers

    def _control(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        match = _TOKEN_CONTROL.match(path)
        try:
            if match and method == "POST":
                self.set_token_error(
                    unquote(match["token"]),
                    body.get("error"),
                    retry_after=body.get("retry_after"),
                    delay_s=float(body.get("delay_s", 0)),
                )
                return 200, {"ok": True}
            if path == "/_control/outage" and method == "POST":
                self.outage(
                    float(body.get("seconds", 5)),
                    str(body.get("error", "UNAVAILABLE")),
                    body.get("retry_after"),
                )
                return 200, {"ok": True}
        except (TypeError, ValueError) as problem:
            return 400, {"error": str(problem)}
        if path == "/_control/messages" and method == "GET":
            return 200, self.messages()
        if path == "/_control/messages" and method == "DELETE":
            self.clear_messages()
            return 200, {"ok": True}
        if path == "/_control/stats" and method == "GET":
            return 200, self.stats()
        return 404, {"error": f"no control route {method} {path}"}

    def _log_delivery(self, record: dict[str, Any]) -> None:
        line = phone_line(record)
        out = self._log if self._log is not None else sys.stdout
        with self._lock:
            print(line, file=out, flush=True)


def phone_line(record: dict[str, Any]) -> str:
    """What the phone would show, on one line."""
    message = record["message"]
    notification = message.get("notification", {})
    android = message.get("android", {})
    data = message.get("data", {})
    token = record["token"]
    short = token if len(token) <= 16 else token[:6] + "…" + token[-6:]
    extras = [f"priority={android.get('priority', 'normal')}", f"ttl={android.get('ttl', '-')}"]
    if android.get("collapse_key"):
        extras.append(f"collapse={android['collapse_key']}")
    at = datetime.fromtimestamp(record["at"]).strftime("%H:%M:%S")
    data_text = " ".join(f"{key}={value}" for key, value in sorted(data.items()))
    return (
        f"[fake-fcm {at}] → {short} ({', '.join(extras)}) "
        f"{notification.get('title', '')} | {notification.get('body', '')} | {data_text}"
    )


def make_service_account(
    path: str | Path, token_uri: str, project_id: str = DEFAULT_PROJECT
) -> dict[str, str]:
    """Write a service-account JSON with a fresh RSA key and the given token endpoint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": f"fake-fcm@{project_id}.iam.gserviceaccount.com",
        "client_id": str(uuid.uuid4().int)[:21],
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }
    Path(path).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return info


def _invalid(message: object) -> str:
    """Why FCM would refuse ``message`` with INVALID_ARGUMENT, or '' if it would not."""
    if not isinstance(message, dict):
        return "Request contains an invalid argument: message is required."
    targets = [key for key in ("token", "fid", "topic", "condition") if message.get(key)]
    if len(targets) != 1:
        return "Request contains an invalid argument: exactly one target is required."
    data = message.get("data", {})
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return "Invalid value at 'message.data': data values must be strings."
    ttl = message.get("android", {}).get("ttl")
    if ttl is not None and not _DURATION.match(str(ttl)):
        return f"Invalid value at 'message.android.ttl' ({ttl})."
    if len(json.dumps(message, ensure_ascii=False).encode()) > 4096 + 1024:
        return "Request contains an invalid argument: message is too big."
    return ""


def _jwt_issuer(assertion: str) -> str | None:
    try:
        payload = assertion.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    return str(issuer) if issuer else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # send_each opens up to 500 connections at once; the default backlog of 5 makes the
    # kernel reset some of them, which FCM never does.
    request_queue_size = 1024

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeFcm
    ) -> None:
        self.fake = fake
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive, like FCM: requests' pool reuses connections across a batch.
    protocol_version = "HTTP/1.1"
    server_version = "fake-fcm/1"
    timeout = 30
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        """The phone log is the useful output; access lines would drown it."""

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        if path == "/token" and method == "POST":
            status, payload = fake._issue_access_token(parse_qs(raw.decode()))
            self._reply(status, payload)
            return
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._reply(
                400,
                {
                    "error": {
                        "code": 400,
                        "status": "INVALID_ARGUMENT",
                        "message": "Invalid JSON payload received.",
                    }
                },
            )
            return
        send = _SEND_PATH.match(path)
        if send and method == "POST":
            authorization = self.headers.get("Authorization", "")
            status, payload, headers = fake._send(send["project"], authorization, body)
            self._reply(status, payload, headers)
        elif path.startswith("/_control/"):
            status, reply = fake._control(method, path, body)
            self._reply(status, reply)
        else:
            self._reply(
                404,
                {
                    "error": {
                        "code": 404,
                        "status": "NOT_FOUND",
                        "message": f"no route {method} {path}",
                    }
                },
            )

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        content = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(content)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(content)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake FCM v1 endpoint that logs what phones get.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--log", help="append the phone log to this file instead of stdout")
    parser.add_argument("--project", default=DEFAULT_PROJECT)
    parser.add_argument(
        "--service-account", help="write a service-account JSON pointing at this server here"
    )
    args = parser.parse_args(argv)
    log = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
    fake = FakeFcm(args.host, args.port, log=log, project_id=args.project)
    base = f"http://{args.host}:{args.port}"
    if args.service_account:
        make_service_account(args.service_account, f"{base}/token", args.project)
    print(f"fake FCM listening on {base} (project {args.project})", file=sys.stderr, flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if log is not None:
            log.close()


if __name__ == "__main__":
    main()
