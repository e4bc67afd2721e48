"""Sign-in, tokens and the error shape."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import TEST_PASSWORD, Factory


def login(client: FlaskClient, phone: str, password: str = TEST_PASSWORD) -> dict:
    response = client.post("/api/v1/auth/login", json={"phone": phone, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_login_returns_tokens_and_member(client: FlaskClient, factory: Factory) -> None:
    member_id = factory.create_member(phone="13900001111", roles=(("coordinator", "patrol", None),))
    body = login(client, "13900001111")
    assert body["member"]["id"] == member_id
    assert body["member"]["phone"] == "13900001111"
    assert {"role": "coordinator", "branch": "patrol", "town": None} in body["member"]["roles"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.get_json()["id"] == member_id


def test_wrong_password_and_unknown_phone_get_the_same_answer(
    client: FlaskClient, factory: Factory
) -> None:
    factory.create_member(phone="13900001112")
    wrong = client.post("/api/v1/auth/login", json={"phone": "13900001112", "password": "nope"})
    unknown = client.post("/api/v1/auth/login", json={"phone": "13900009999", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.mimetype == "application/problem+json"
    assert wrong.get_json()["detail"] == unknown.get_json()["detail"]


def test_repeated_failures_are_throttled_with_retry_after(
    client: FlaskClient, factory: Factory
) -> None:
    factory.create_member(phone="13900001113")
    statuses = [
        client.post(
            "/api/v1/auth/login", json={"phone": "13900001113", "password": "x"}
        ).status_code
        for _ in range(6)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[5] == 429
    blocked = client.post("/api/v1/auth/login", json={"phone": "13900001113", "password": "x"})
    assert blocked.status_code == 429
    assert blocked.mimetype == "application/problem+json"
    assert int(blocked.headers["Retry-After"]) > 0


def test_spellings_of_one_phone_share_one_failure_limit(
    client: FlaskClient, factory: Factory
) -> None:
    """Sign-in looks the phone up without surrounding blanks, so the per-phone throttle counts
    the same phone whatever blanks surround it: they are not fresh allowances of guesses."""
    factory.create_member(phone="13900001114")
    variants = [" 13900001114", "13900001114\t", "\n13900001114 ", "13900001114\u3000"]
    statuses = [
        client.post("/api/v1/auth/login", json={"phone": phone, "password": "x"}).status_code
        for phone in [*variants, "13900001114"]
    ]
    assert statuses == [401] * 5
    assert [
        client.post("/api/v1/auth/login", json={"phone": phone, "password": "x"}).status_code
        for phone in variants
    ] == [429] * len(variants)
    activations = [
        client.post(
            "/api/v1/auth/activate",
            json={"phone": phone, "code": "00000000", "password": "a new password"},
        ).status_code
        for phone in [*variants, "13900001114", " 13900001114"]
    ]
    assert activations == [401] * 5 + [429]


def test_refresh_rotates_and_reuse_revokes_the_family(
    client: FlaskClient, factory: Factory
) -> None:
    factory.create_member(phone="13900001114")
    first = login(client, "13900001114")
    old = {"Authorization": f"Bearer {first['refresh_token']}"}
    second = client.post("/api/v1/auth/refresh", headers=old)
    assert second.status_code == 200
    newer = second.get_json()
    # The old token again: it was copied, so the whole sign-in is revoked.
    assert client.post("/api/v1/auth/refresh", headers=old).status_code == 401
    assert (
        client.post(
            "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {newer['refresh_token']}"}
        ).status_code
        == 401
    )
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {newer['access_token']}"})
    assert me.status_code == 401


def test_logout_stops_the_refresh_token(client: FlaskClient, factory: Factory) -> None:
    factory.create_member(phone="13900001115")
    tokens = login(client, "13900001115")
    out = client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert out.status_code == 204
    again = client.post(
        "/api/v1/auth/refresh", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert again.status_code == 401


def test_password_change_signs_out_old_tokens(client: FlaskClient, factory: Factory) -> None:
    factory.create_member(phone="13900001116")
    tokens = login(client, "13900001116")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    bad = client.put(
        "/api/v1/me/password",
        json={"current_password": "wrong", "new_password": "new password 2"},
        headers=headers,
    )
    assert bad.status_code == 422
    assert "current_password" in bad.get_json()["errors"]
    ok = client.put(
        "/api/v1/me/password",
        json={"current_password": TEST_PASSWORD, "new_password": "new password 2"},
        headers=headers,
    )
    assert ok.status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    login(client, "13900001116", "new password 2")


def test_errors_are_problem_documents(client: FlaskClient) -> None:
    missing = client.get("/api/v1/me")
    assert missing.status_code == 401
    assert missing.mimetype == "application/problem+json"
    assert set(missing.get_json()) >= {"type", "title", "status", "detail"}
    not_found = client.get("/api/v1/no-such-path")
    assert not_found.status_code == 404 and not_found.mimetype == "application/problem+json"
    wrong_method = client.delete("/api/v1/health")
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.headers["Allow"]
    invalid = client.post("/api/v1/auth/login", json={"phone": 5})
    assert invalid.status_code == 422
    assert set(invalid.get_json()["errors"]) == {"phone", "password"}
    not_json = client.post("/api/v1/auth/login", data="{", content_type="application/json")
    assert 400 <= not_json.status_code < 500


def test_health_and_ready(client: FlaskClient) -> None:
    assert client.get("/api/v1/health").get_json() == {"status": "ok"}
    assert client.get("/api/v1/ready").status_code == 200
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/auth/login" in spec["paths"]


def test_control_characters_are_refused_everywhere_not_stored(
    client: FlaskClient, factory: Factory
) -> None:
    member = factory.create_member()
    headers = factory.headers(member)
    nul_login = client.post(
        "/api/v1/auth/login", json={"phone": "139\u00000000000", "password": "x"}
    )
    assert nul_login.status_code == 422
    assert "phone" in nul_login.get_json()["errors"]
    surrogate = client.put(
        "/api/v1/me/password",
        data='{"current_password": "\\ud800", "new_password": "fine password"}',
        content_type="application/json",
        headers=headers,
    )
    assert surrogate.status_code == 422
    assert "current_password" in surrogate.get_json()["errors"]
    query = client.get("/api/v1/members?q=a%00b", headers=headers)
    assert query.status_code == 422
    assert "q" in query.get_json()["errors"]
    nested = client.post(
        "/api/v1/auth/login", json={"phone": "13900000000", "password": "ok", "x": [{"y": "\x07"}]}
    )
    assert nested.status_code == 422
    assert "x[0].y" in nested.get_json()["errors"]
    # Line breaks and tabs are ordinary text and pass the guard.
    ordinary = client.post(
        "/api/v1/auth/login", json={"phone": "13900000000", "password": "a\tb\n"}
    )
    assert ordinary.status_code == 401


def test_absurd_ids_in_any_path_are_not_found(client: FlaskClient, factory: Factory) -> None:
    headers = factory.headers(factory.create_member())
    for path in ("/api/v1/me/inbox/99999999999999999999/read", "/api/v1/members/2147483648"):
        response = (
            client.post(path, headers=headers)
            if "read" in path
            else client.get(path, headers=headers)
        )
        assert response.status_code == 404, path
        assert response.mimetype == "application/problem+json"
