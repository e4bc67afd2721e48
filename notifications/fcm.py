"""Sending pushes through firebase-admin, one verdict per push, never blocking on FCM's say-so.

The outbox worker owns retries: it knows when a row was first tried, how often, and when it
may run again. So the transport here makes exactly one attempt per message and reports
``RETRY`` with FCM's ``Retry-After`` instead of sleeping on it inside ``send_each``.
"""

from __future__ import annotations

import functools
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import firebase_admin
import google.auth.exceptions
import google.auth.transport.requests
import requests
import requests.adapters
from firebase_admin import credentials, exceptions, messaging
from urllib3.util.retry import Retry

from notifications.messages import Push

MAX_BATCH = 500  # send_each refuses longer lists
DEFAULT_TIMEOUT_S = 10.0

_FCM_PATH = "/v1/projects/{0}/messages:send"
_FCM_DETAIL_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_DEAD_TOKEN_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH", exceptions.NOT_FOUND})
_RETRY_CODES = frozenset(
    {
        "QUOTA_EXCEEDED",
        exceptions.UNAVAILABLE,
        exceptions.INTERNAL,
        exceptions.RESOURCE_EXHAUSTED,
        exceptions.DEADLINE_EXCEEDED,
        exceptions.ABORTED,
    }
)


class Outcome(StrEnum):
    SENT = "SENT"
    RETRY = "RETRY"
    TOKEN_DEAD = "TOKEN_DEAD"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class SendResult:
    """What became of one push.

    ``error_code`` is FCM's own code (``UNREGISTERED``, ``QUOTA_EXCEEDED``) when FCM gave one,
    else the platform status (``UNAVAILABLE``), so a failed outbox row says why it failed.
    """

    message_id: str
    token: str
    outcome: Outcome
    fcm_name: str | None = None
    error_code: str | None = None
    detail: str | None = None
    retry_after_s: float | None = None


def to_fcm_message(push: Push, *, now: float | None = None) -> messaging.Message:
    """The firebase-admin message for ``push``, with matching Android and APNs settings.

    APNs knows neither Android's priority nor its TTL, so they are restated as
    ``apns-priority`` and ``apns-expiration``; the collapse key becomes ``apns-collapse-id``.
    """
    sent_at = time.time() if now is None else now
    high = push.android_priority == "high"
    headers = {
        "apns-priority": "10" if high else "5",
        "apns-push-type": "alert",
        "apns-expiration": str(int(sent_at) + push.ttl_seconds),
    }
    if push.collapse_key:
        headers["apns-collapse-id"] = push.collapse_key
    # catch_warnings swaps process-wide filters; the narrow filter makes a race between two
    # threads harmless (at worst this one warning stays silenced).
    with warnings.catch_warnings():
        # firebase-admin 7.7 deprecates `token` in favour of `fid` (Firebase installation id).
        # Our phones register FCM registration tokens, which FCM still accepts in `token`;
        # Firebase warns against mixing the two schemes, so we move to `fid` together with the
        # phone app, not before. Only this one warning is silenced.
        warnings.filterwarnings(
            "ignore", message=r"Message\.token is deprecated", category=DeprecationWarning
        )
        return messaging.Message(
            token=push.token,
            notification=messaging.Notification(title=push.title, body=push.body),
            data=dict(push.data),
            android=messaging.AndroidConfig(
                priority=push.android_priority,
                ttl=push.ttl_seconds,
                collapse_key=push.collapse_key,
            ),
            apns=messaging.APNSConfig(
                headers=headers,
                payload=messaging.APNSPayload(aps=messaging.Aps(sound="default")),
            ),
        )


def fcm_url_template(base_url: str) -> str:
    """FCM's send URL on another host, with ``{0}`` for the project id like firebase-admin's."""
    return base_url.rstrip("/") + _FCM_PATH


def point_firebase_admin_at(base_url: str) -> None:
    """Make every messaging service created from now on send to ``base_url`` (the fake FCM).

    Services read ``_MessagingService.FCM_URL`` once, when an app first sends; prefer
    ``FcmSender(endpoint=...)``, which changes only its own app.
    """
    messaging._MessagingService.FCM_URL = fcm_url_template(base_url)


class FcmSender:
    """Sends pushes in batches through its own firebase-admin app.

    :param service_account: path to a service-account JSON file, or its parsed content.
    :param project_id: overrides the project in the service account.
    :param app_name: name of the firebase-admin app; a unique one by default, so two senders
        (or the app's own default app) never share retry settings.
    :param endpoint: base URL to send to instead of ``https://fcm.googleapis.com``.
    :param timeout_s: per-request timeout, also for fetching the OAuth token.
    :param batch_size: at most 500; ``send_each`` starts one thread per message in a batch.
    """

    def __init__(
        self,
        service_account: str | os.PathLike[str] | Mapping[str, Any],
        *,
        project_id: str | None = None,
        app_name: str | None = None,
        endpoint: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        batch_size: int = MAX_BATCH,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be within 1..{MAX_BATCH}")
        source = dict(service_account) if isinstance(service_account, Mapping) else service_account
        options: dict[str, Any] = {"httpTimeout": timeout_s}
        if project_id:
            options["projectId"] = project_id
        self._timeout_s = timeout_s
        self._batch_size = batch_size
        self._app = firebase_admin.initialize_app(
            credentials.Certificate(source),
            options,
            name=app_name or f"notifications-{uuid.uuid4().hex[:12]}",
        )
        self._credential = self._app.credential.get_credential()
        self._token_lock = threading.Lock()
        self._token_session = requests.Session()
        self._configure_service(endpoint)

    @property
    def app(self) -> firebase_admin.App:
        return self._app

    def warm_up(self) -> None:
        """Fetch the OAuth token now, so that the first batch's threads don't each fetch one.

        google-auth refreshes without a lock: 500 threads finding no token fetch 500 tokens.

        :raise google.auth.exceptions.GoogleAuthError: the token endpoint refused or is down.
        """
        with self._token_lock:
            if not self._credential.valid:
                request = google.auth.transport.requests.Request(self._token_session)
                self._credential.refresh(functools.partial(request, timeout=self._timeout_s))

    def send(self, pushes: Sequence[Push]) -> list[SendResult]:
        """Send ``pushes``; one result per push, in order. Never raises for delivery problems."""
        results: list[SendResult] = []
        for batch in _batches(pushes, self._batch_size):
            results.extend(self._send_batch(batch))
        return results

    def close(self) -> None:
        """Release the firebase-admin app and its connection pools."""
        self._token_session.close()
        firebase_admin.delete_app(self._app)

    def __enter__(self) -> FcmSender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _configure_service(self, endpoint: str | None) -> None:
        # firebase-admin offers no option for either setting, so this reaches into its
        # messaging service once, at start.  Its default urllib3 Retry repeats 500/503 four
        # times with backoff and, because Retry-After is honoured by default, sleeps as long as
        # a 429 or 503 asks (60 s and more) inside send_each.
        service = messaging._get_messaging_service(self._app)
        if endpoint:
            service._fcm_url = fcm_url_template(endpoint).format(service._project_id)
        no_retry = Retry(total=0, raise_on_status=False, respect_retry_after_header=False)
        # send_each runs one thread per message; a pool smaller than the batch makes urllib3
        # drop the extra connections with a warning per message once FCM is slow to answer.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=10, pool_maxsize=self._batch_size, max_retries=no_retry
        )
        parts = urlsplit(service._fcm_url)
        session = service._client.session
        for prefix in ("http://", "https://", f"{parts.scheme}://{parts.netloc}"):
            session.mount(prefix, adapter)

    def _send_batch(self, batch: Sequence[Push]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(batch)
        to_send: list[tuple[int, messaging.Message]] = []
        for index, push in enumerate(batch):
            try:
                message = to_fcm_message(push)
                str(message)  # encodes and validates, as send_each would for the whole batch
            except ValueError as error:
                results[index] = _failed(push, Outcome.REJECTED, "INVALID_MESSAGE", str(error))
            else:
                to_send.append((index, message))
        if to_send:
            for (index, _), result in zip(
                to_send,
                self._deliver([batch[i] for i, _ in to_send], [m for _, m in to_send]),
                strict=True,
            ):
                results[index] = result
        return [result for result in results if result is not None]

    def _deliver(self, pushes: list[Push], messages: list[messaging.Message]) -> list[SendResult]:
        try:
            self.warm_up()
            response = messaging.send_each(messages, app=self._app)
        except (
            exceptions.FirebaseError,
            google.auth.exceptions.GoogleAuthError,
            requests.RequestException,
        ) as error:
            # The whole batch failed before FCM judged any message (token endpoint down,
            # worker pool error): nothing is known to be wrong with the messages.
            code = getattr(error, "code", None) or type(error).__name__
            return [_failed(push, Outcome.RETRY, str(code), str(error)) for push in pushes]
        return [
            _result(push, answer) for push, answer in zip(pushes, response.responses, strict=True)
        ]


def classify(error: exceptions.FirebaseError) -> tuple[Outcome, str, float | None]:
    """Outcome, error code and Retry-After seconds for one failed send."""
    fcm_code = _fcm_error_code(error)
    code = fcm_code or str(error.code)
    response = error.http_response
    status = response.status_code if response is not None else None
    if fcm_code in _DEAD_TOKEN_CODES or error.code == exceptions.NOT_FOUND:
        return Outcome.TOKEN_DEAD, code, None
    # No response at all means the request never got an answer (refused, reset, timed out).
    if status is None or status == 429 or status >= 500 or code in _RETRY_CODES:
        header = response.headers.get("Retry-After") if response is not None else None
        return Outcome.RETRY, code, parse_retry_after(header)
    return Outcome.REJECTED, code, None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _result(push: Push, answer: messaging.SendResponse) -> SendResult:
    if answer.success:
        return SendResult(push.message_id, push.token, Outcome.SENT, fcm_name=answer.message_id)
    error = answer.exception
    if not isinstance(error, exceptions.FirebaseError):
        return _failed(push, Outcome.RETRY, "UNKNOWN", str(error))
    outcome, code, retry_after = classify(error)
    return _failed(push, outcome, code, str(error), retry_after)


def _failed(
    push: Push, outcome: Outcome, code: str, detail: str, retry_after: float | None = None
) -> SendResult:
    return SendResult(
        push.message_id,
        push.token,
        outcome,
        error_code=code,
        detail=detail,
        retry_after_s=retry_after,
    )


def _fcm_error_code(error: exceptions.FirebaseError) -> str | None:
    response = error.http_response
    if response is None:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    details = body.get("error", {}).get("details", []) if isinstance(body, dict) else []
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("@type") == _FCM_DETAIL_TYPE:
            code = detail.get("errorCode")
            return str(code) if code else None
    return None


def _batches(pushes: Sequence[Push], size: int) -> Iterator[Sequence[Push]]:
    for start in range(0, len(pushes), size):
        yield pushes[start : start + size]
