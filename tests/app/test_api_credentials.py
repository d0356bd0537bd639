"""/api/qwen/credentials: write-only secrets, status in seconds, delete idempotent."""

from __future__ import annotations

import time

from tests.support.daemon import Api, assert_error

TOKEN = "tok-s3cr3t-credentials"
COOKIES = "cna=abc; token=ck-s3cr3t-credentials"
STATUS_KEYS = {"hasCredentials", "isValid", "isExpired", "expiresAt", "createdAt", "updatedAt"}


async def test_save_status_and_delete(api: Api) -> None:
    status, body = await api.get("/api/qwen/credentials")
    assert status == 200
    assert body == {
        "hasCredentials": False,
        "isValid": False,
        "isExpired": False,
        "expiresAt": None,
        "createdAt": None,
        "updatedAt": None,
    }
    status, body = await api.post(
        "/api/qwen/credentials", {"token": TOKEN, "cookies": COOKIES, "expiresAt": 4102444800}
    )
    assert status == 200
    assert body == {
        "success": True,
        "message": "Qwen credentials updated successfully",
        "expiresAt": 4102444800,
    }
    status, body = await api.get("/api/qwen/credentials")
    assert status == 200
    assert set(body) == STATUS_KEYS  # never token or cookies
    assert body["hasCredentials"] is True
    assert body["isValid"] is True
    assert body["isExpired"] is False
    assert body["expiresAt"] == 4102444800
    now = time.time()
    # Unix seconds, as the extension sends them (not milliseconds).
    assert abs(body["createdAt"] - now) < 60
    assert abs(body["updatedAt"] - now) < 60

    status, body = await api.delete("/api/qwen/credentials")
    assert status == 200
    assert body == {"success": True, "message": "Qwen credentials deleted", "deleted": 1}
    status, body = await api.delete("/api/qwen/credentials")
    assert status == 200
    assert body == {"success": True, "message": "No credentials to delete", "deleted": 0}
    status, body = await api.get("/api/qwen/credentials")
    assert body["hasCredentials"] is False and body["createdAt"] is None


async def test_expired_and_open_ended(api: Api) -> None:
    status, body = await api.post(
        "/api/qwen/credentials", {"token": TOKEN, "cookies": COOKIES, "expiresAt": 1}
    )
    assert status == 200 and body["expiresAt"] == 1
    status, body = await api.get("/api/qwen/credentials")
    assert (body["hasCredentials"], body["isExpired"], body["isValid"]) == (True, True, False)
    assert body["expiresAt"] == 1
    # A replacement without expiresAt (or null) never expires.
    for payload in (
        {"token": TOKEN, "cookies": COOKIES},
        {"token": TOKEN, "cookies": COOKIES, "expiresAt": None},
    ):
        status, body = await api.post("/api/qwen/credentials", payload)
        assert status == 200 and body["expiresAt"] is None
        status, body = await api.get("/api/qwen/credentials")
        assert (body["hasCredentials"], body["isExpired"], body["isValid"]) == (True, False, True)
        assert body["expiresAt"] is None


async def test_milliseconds_refused_with_a_clear_message(api: Api) -> None:
    ms = int(time.time() * 1000) + 3_600_000
    status, body = await api.post(
        "/api/qwen/credentials", {"token": TOKEN, "cookies": COOKIES, "expiresAt": ms}
    )
    assert_error(status, body, 400, "validation_failed")
    assert "seconds" in body["error"]["message"]
    assert [d["field"] for d in body["error"]["details"]] == ["expiresAt"]
    assert "seconds" in body["error"]["details"][0]["message"]
    status, body = await api.get("/api/qwen/credentials")
    assert body["hasCredentials"] is False  # nothing stored


async def test_validation_errors(api: Api) -> None:
    cases = [
        ({"token": "", "cookies": COOKIES}, {"token"}),
        ({"token": "   ", "cookies": COOKIES}, {"token"}),
        ({"token": TOKEN, "cookies": ""}, {"cookies"}),
        ({"cookies": COOKIES}, {"token"}),
        ({}, {"token", "cookies"}),
        ({"token": "", "cookies": "", "expiresAt": -1}, {"token", "cookies", "expiresAt"}),
        ({"token": 123, "cookies": COOKIES}, {"token"}),
        ({"token": TOKEN, "cookies": COOKIES, "expiresAt": "9999999999"}, {"expiresAt"}),
        ({"token": TOKEN, "cookies": COOKIES, "expiresAt": 1.5}, {"expiresAt"}),
        ({"token": TOKEN, "cookies": COOKIES, "expiresAt": True}, {"expiresAt"}),
        ({"token": "s3cr3t" + "x" * 16 * 1024, "cookies": COOKIES}, {"token"}),
    ]
    for payload, fields in cases:
        status, body = await api.post("/api/qwen/credentials", payload)
        assert_error(status, body, 400, "validation_failed")
        assert {d["field"] for d in body["error"]["details"]} == fields, payload
    # At the limit is fine.
    status, body = await api.post(
        "/api/qwen/credentials", {"token": "s3cr3t" + "x" * (16 * 1024 - 6), "cookies": COOKIES}
    )
    assert status == 200, body
