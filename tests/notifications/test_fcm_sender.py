"""The sender through the real firebase-admin against the fake FCM; its records are the proof."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from firebase_admin import messaging

from notifications.fakefcm import FakeFcm
from notifications.fcm import FcmSender, Outcome, SendResult, parse_retry_after
from notifications.messages import Push

PushFactory = Callable[..., Push]


def _by_token(results: list[SendResult]) -> dict[str, SendResult]:
    return {result.token: result for result in results}


def test_success_is_recorded_by_fcm_with_message_id_and_chinese_text(
    sender: FcmSender, fake_fcm: FakeFcm, create_push: PushFactory
) -> None:
    push = create_push("phone-1", post="东湖花园南门（红马甲集合点）")

    [result] = sender.send([push])

    assert result.outcome is Outcome.SENT
    [record] = fake_fcm.messages()
    assert result.fcm_name == record["name"]
    assert record["name"].startswith("projects/vh-test/messages/")
    assert record["token"] == "phone-1"
    assert record["message"]["data"]["message_id"] == push.message_id
    assert record["message"]["notification"] == {"title": push.title, "body": push.body}
    assert "东湖花园南门（红马甲集合点）" in record["message"]["notification"]["title"]


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("UNREGISTERED", Outcome.TOKEN_DEAD),
        ("NOT_FOUND", Outcome.TOKEN_DEAD),
        ("SENDER_ID_MISMATCH", Outcome.TOKEN_DEAD),
        ("INVALID_ARGUMENT", Outcome.REJECTED),
        ("THIRD_PARTY_AUTH_ERROR", Outcome.REJECTED),
        ("QUOTA_EXCEEDED", Outcome.RETRY),
        ("UNAVAILABLE", Outcome.RETRY),
        ("INTERNAL", Outcome.RETRY),
    ],
)
def test_fcm_errors_are_classified(
    sender: FcmSender, fake_fcm: FakeFcm, create_push: PushFactory, error: str, outcome: Outcome
) -> None:
    fake_fcm.set_token_error("bad", error)

    results = _by_token(sender.send([create_push("bad"), create_push("good")]))

    assert results["bad"].outcome is outcome
    assert results["bad"].error_code == error
    assert results["good"].outcome is Outcome.SENT
    assert [record["token"] for record in fake_fcm.messages()] == ["good"]


@pytest.mark.parametrize("error", ["UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED"])
def test_retryable_errors_are_tried_once_not_retried_inside_send_each(
    sender: FcmSender, fake_fcm: FakeFcm, create_push: PushFactory, error: str
) -> None:
    fake_fcm.set_token_error("busy", error)

    [result] = sender.send([create_push("busy")])

    assert result.outcome is Outcome.RETRY
    assert fake_fcm.stats()["send_requests"] == 1


def test_quota_answer_returns_promptly_with_retry_after(
    sender: FcmSender, fake_fcm: FakeFcm, create_push: PushFactory
) -> None:
    fake_fcm.set_token_error("busy", "QUOTA_EXCEEDED", retry_after=60)

    started = time.monotonic()
    [result] = sender.send([create_push("busy")])
    elapsed = time.monotonic() - started

    assert elapsed < 10, "send_each slept on Retry-After instead of handing it back"
    assert result.outcome is Outcome.RETRY
    assert result.error_code == "QUOTA_EXCEEDED"
    assert result.retry_after_s == 60


def test_outage_makes_everything_retry_and_after_it_everything_is_sent(
    sender: FcmSender, fake_fcm: FakeFcm, create_push: PushFactory
) -> None:
    pushes = [create_push(f"phone-{i}", assignment_id=f"a-{i}") for i in range(20)]
    fake_fcm.outage(1.5, "UNAVAILABLE", retry_after=30)

    during = sender.send(pushes)
    assert {result.outcome for result in during} == {Outcome.RETRY}
    assert {result.retry_after_s for result in during} == {30}
    assert fake_fcm.messages() == []

    time.sleep(1.6)
    after = sender.send(pushes)
    assert {result.outcome for result in after} == {Outcome.SENT}
    delivered = {record["message"]["data"]["message_id"] for record in fake_fcm.messages()}
    assert delivered == {push.message_id for push in pushes}


@pytest.mark.slow
def test_more_than_500_pushes_go_in_batches_of_500(
    sender: FcmSender,
    fake_fcm: FakeFcm,
    create_push: PushFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    batch_sizes: list[int] = []
    real_send_each = messaging.send_each

    def counting_send_each(
        messages: list[messaging.Message], dry_run: bool = False, app: object = None
    ) -> messaging.BatchResponse:
        batch_sizes.append(len(messages))
        return real_send_each(messages, dry_run=dry_run, app=app)

    monkeypatch.setattr(messaging, "send_each", counting_send_each)
    pushes = [create_push(f"phone-{i}", assignment_id=f"a-{i}") for i in range(501)]

    results = sender.send(pushes)

    assert batch_sizes == [500, 1]
    assert "Connection pool is full" not in caplog.text
    assert [result.message_id for result in results] == [push.message_id for push in pushes]
    assert {result.outcome for result in results} == {Outcome.SENT}
    delivered = {record["message"]["data"]["message_id"] for record in fake_fcm.messages()}
    assert delivered == {push.message_id for push in pushes}


def test_smaller_batch_size_keeps_order(
    fake_fcm: FakeFcm, service_account: Path, create_push: PushFactory
) -> None:
    fake_fcm.set_token_error("phone-3", "UNREGISTERED")
    pushes = [create_push(f"phone-{i}") for i in range(7)]

    with FcmSender(service_account, endpoint=fake_fcm.base_url, batch_size=3) as small:
        results = small.send(pushes)

    assert [result.token for result in results] == [push.token for push in pushes]
    assert results[3].outcome is Outcome.TOKEN_DEAD
    assert len(fake_fcm.messages()) == 6


def test_a_message_firebase_admin_refuses_is_rejected_alone(
    sender: FcmSender, fake_fcm: FakeFcm, create_push: PushFactory
) -> None:
    broken = replace(create_push("phone-1"), ttl_seconds=-1)

    results = sender.send([broken, create_push("phone-2")])

    assert results[0].outcome is Outcome.REJECTED
    assert results[0].error_code == "INVALID_MESSAGE"
    assert results[1].outcome is Outcome.SENT
    assert [record["token"] for record in fake_fcm.messages()] == ["phone-2"]


def test_first_sends_share_one_oauth_token(
    fake_fcm: FakeFcm, service_account: Path, create_push: PushFactory
) -> None:
    with FcmSender(service_account, endpoint=fake_fcm.base_url) as fresh:
        results = fresh.send([create_push(f"phone-{i}") for i in range(50)])

    assert {result.outcome for result in results} == {Outcome.SENT}
    assert fake_fcm.stats()["token_requests"] == 1


def test_slow_fcm_times_out_as_retry(
    fake_fcm: FakeFcm, service_account: Path, create_push: PushFactory
) -> None:
    fake_fcm.set_token_error("slow", None, delay_s=12)
    with FcmSender(service_account, endpoint=fake_fcm.base_url, timeout_s=0.5) as impatient:
        impatient.warm_up()
        started = time.monotonic()
        [result] = impatient.send([create_push("slow")])

    assert time.monotonic() - started < 8  # the fake answers after 12 s
    assert result.outcome is Outcome.RETRY
    assert result.error_code == "DEADLINE_EXCEEDED"


def test_fcm_gone_makes_every_push_retry_without_raising(
    tmp_path: Path, create_push: PushFactory
) -> None:
    fake = FakeFcm(log=io.StringIO())
    base_url = fake.start()
    account = tmp_path / "sa.json"
    fake.write_service_account(account)
    with FcmSender(account, endpoint=base_url, timeout_s=2) as lonely:
        lonely.warm_up()
        assert lonely.send([create_push("phone-0")])[0].outcome is Outcome.SENT
        fake.stop()

        started = time.monotonic()
        results = lonely.send([create_push(f"phone-{i}") for i in range(5)])

    assert time.monotonic() - started < 5
    assert {result.outcome for result in results} == {Outcome.RETRY}
    assert {result.error_code for result in results} == {"UNAVAILABLE"}


def test_token_endpoint_gone_makes_every_push_retry(
    tmp_path: Path, create_push: PushFactory
) -> None:
    fake = FakeFcm(log=io.StringIO())
    base_url = fake.start()
    account = tmp_path / "sa.json"
    fake.write_service_account(account)
    fake.stop()

    with FcmSender(account, endpoint=base_url, timeout_s=2) as cold:
        started = time.monotonic()
        results = cold.send([create_push("phone-1"), create_push("phone-2")])

    assert time.monotonic() - started < 10
    assert [result.outcome for result in results] == [Outcome.RETRY, Outcome.RETRY]
    assert all(result.error_code for result in results)


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480) == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
