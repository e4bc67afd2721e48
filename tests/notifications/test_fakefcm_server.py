"""The fake FCM's control API, its phone log, and running it as a process."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from notifications.fakefcm import FakeFcm, phone_line
from notifications.fcm import FcmSender, Outcome
from notifications.messages import Push

PushFactory = Callable[..., Push]


def test_control_api_injects_errors_and_lists_and_clears_messages(
    sender: FcmSender, fake_fcm: FakeFcm, create_push: PushFactory
) -> None:
    control = f"{fake_fcm.base_url}/_control"
    answer = requests.post(f"{control}/tokens/gone", json={"error": "UNREGISTERED"}, timeout=5)
    assert answer.status_code == 200

    results = sender.send([create_push("gone"), create_push("alive")])

    assert [result.outcome for result in results] == [Outcome.TOKEN_DEAD, Outcome.SENT]
    listed = requests.get(f"{control}/messages", timeout=5).json()
    assert [record["token"] for record in listed] == ["alive"]
    assert listed[0]["message"]["notification"]["title"].startswith("值班提醒")
    stats = requests.get(f"{control}/stats", timeout=5).json()
    assert stats["send_requests"] == 2
    assert stats["delivered"] == 1

    assert requests.delete(f"{control}/messages", timeout=5).status_code == 200
    assert requests.get(f"{control}/messages", timeout=5).json() == []

    requests.post(f"{control}/tokens/gone", json={"error": None}, timeout=5)
    assert sender.send([create_push("gone")])[0].outcome is Outcome.SENT


def test_control_api_outage_and_bad_requests(
    sender: FcmSender, fake_fcm: FakeFcm, create_push: PushFactory
) -> None:
    control = f"{fake_fcm.base_url}/_control"
    requests.post(f"{control}/outage", json={"seconds": 30, "error": "INTERNAL"}, timeout=5)

    assert sender.send([create_push("phone")])[0].error_code == "INTERNAL"
    refused = requests.post(f"{control}/tokens/x", json={"error": "TEAPOT"}, timeout=5)
    assert refused.status_code == 400
    assert requests.get(f"{control}/nothing", timeout=5).status_code == 404


def test_unauthenticated_send_is_refused(fake_fcm: FakeFcm) -> None:
    answer = requests.post(
        f"{fake_fcm.base_url}/v1/projects/vh-test/messages:send",
        json={"message": {"token": "t"}},
        headers={"Authorization": "Bearer forged"},
        timeout=5,
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"
    assert fake_fcm.messages() == []


def test_dead_token_prefix_is_unregistered_from_the_start(
    sender: FcmSender, create_push: PushFactory
) -> None:
    [result] = sender.send([create_push("fake-dead-42")])
    assert result.outcome is Outcome.TOKEN_DEAD


def test_phone_log_shows_what_the_phone_gets(tmp_path: Path, create_push: PushFactory) -> None:
    log = io.StringIO()
    fake = FakeFcm(log=log)
    base_url = fake.start()
    fake.write_service_account(tmp_path / "sa.json")
    try:
        with FcmSender(tmp_path / "sa.json", endpoint=base_url) as sender:
            sender.send([create_push("phone-7", post="潘火街道 网格3")])
    finally:
        fake.stop()

    [line] = log.getvalue().splitlines()
    assert "值班提醒：潘火街道 网格3 06:00 开始" in line
    assert "collapse=reminder-a-1" in line
    assert "priority=high" in line
    assert line == phone_line(fake.messages()[0])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_up(base_url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base_url}/_control/stats", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail("the fake FCM process did not start")


def test_runs_as_a_process_and_logs_chinese_to_a_file(
    tmp_path: Path, create_push: PushFactory
) -> None:
    port = _free_port()
    log, account = tmp_path / "phone.log", tmp_path / "sa.json"
    command = [sys.executable, "-m", "notifications.fakefcm", "--port", str(port)]
    command += ["--log", str(log), "--service-account", str(account)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_up(base_url)
        with FcmSender(account, endpoint=base_url) as sender:
            [result] = sender.send([create_push("phone-1", post="首南街道 日巡路线")])
    finally:
        process.terminate()
        process.communicate(timeout=10)

    assert result.outcome is Outcome.SENT
    assert json.loads(account.read_text())["token_uri"] == f"{base_url}/token"
    assert "值班提醒：首南街道 日巡路线 06:00 开始" in log.read_text(encoding="utf-8")


def test_a_send_still_in_flight_at_reset_is_not_recorded_after_it() -> None:
    import threading

    from notifications.fakefcm import FakeFcm as Server

    fake = Server()
    fake.start()
    try:
        fake.set_token_error("slow", None, delay_s=1.0)
        token = fake._issue_access_token(
            {"grant_type": ["urn:ietf:params:oauth:grant-type:jwt-bearer"], "assertion": [""]}
        )
        assert token[0] == 400  # no signed assertion: the send below uses a known token
        with fake._lock:
            fake._access_tokens.add("known")
        answers: list[int] = []
        sender = threading.Thread(
            target=lambda: answers.append(
                fake._send("p", "Bearer known", {"message": {"token": "slow"}})[0]
            )
        )
        sender.start()
        while fake.stats()["send_requests"] == 0:  # the send has begun and is sleeping
            time.sleep(0.01)
        fake.reset()
        sender.join(5)
        assert answers == [200]
        assert fake.messages() == []
    finally:
        fake.stop()
