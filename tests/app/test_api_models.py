"""/api/models: list with filters, get with providers, create, update, delete."""

from __future__ import annotations

import json

from tests.support.daemon import Api, assert_error

MODEL_KEYS = {"id", "name", "description", "capabilities", "created_at", "updated_at"}
SEEDED = ["qwen3-coder-plus", "qwen3-max", "qwen3-vl-32b", "qwen3-vl-plus"]


async def test_seed_create_example_exactly(api: Api) -> None:
    # curl -X POST .../api/models -H 'Content-Type: application/json'
    #      -d '{"id":"test-model","name":"Test Model"}'
    status, body = await api.post(
        "/api/models",
        data=b'{"id":"test-model","name":"Test Model"}',
        headers={"Content-Type": "application/json"},
    )
    assert status == 201
    assert set(body) == {"model"}
    model = body["model"]
    assert set(model) == MODEL_KEYS
    assert model["id"] == "test-model" and model["name"] == "Test Model"
    assert model["description"] is None and model["capabilities"] == []
    assert isinstance(model["created_at"], int) and model["created_at"] > 10**12


async def test_list_and_filters(api: Api) -> None:
    status, body = await api.get("/api/models")
    assert status == 200
    assert sorted(m["id"] for m in body["models"]) == SEEDED
    assert body["total"] == 4
    for m in body["models"]:
        assert set(m) == MODEL_KEYS
        # Real arrays, never a JSON string inside the JSON.
        assert isinstance(m["capabilities"], list) and all(
            isinstance(c, str) for c in m["capabilities"]
        )
    by_id = {m["id"]: m for m in body["models"]}
    assert by_id["qwen3-vl-plus"]["capabilities"] == ["chat", "vision"]

    status, body = await api.get("/api/models?capability=vision")
    assert sorted(m["id"] for m in body["models"]) == ["qwen3-vl-32b", "qwen3-vl-plus"]
    assert body["total"] == 2
    status, body = await api.get("/api/models?capability=vis")  # whole values only
    assert body == {"models": [], "total": 0}
    status, body = await api.post(
        "/api/models", {"id": "local-1", "name": "Local", "capabilities": ["chat", "code"]}
    )
    assert status == 201
    await api.post("/api/providers/lm-studio-default/models", {"model_id": "local-1"})
    await api.post("/api/providers/lm-studio-default/models", {"model_id": "qwen3-vl-plus"})
    status, body = await api.get("/api/models?provider=lm-studio-default")
    assert sorted(m["id"] for m in body["models"]) == ["local-1", "qwen3-vl-plus"]
    status, body = await api.get("/api/models?provider=lm-studio-default&capability=code")
    assert [m["id"] for m in body["models"]] == ["local-1"]
    status, body = await api.get("/api/models?provider=qwen-proxy-default&capability=code")
    assert [m["id"] for m in body["models"]] == ["qwen3-coder-plus"]
    status, body = await api.get("/api/models?provider=none-such")
    assert body == {"models": [], "total": 0}


async def test_get_with_providers(api: Api) -> None:
    status, body = await api.get("/api/models/qwen3-max")
    assert status == 200
    model = body["model"]
    assert set(model) >= MODEL_KEYS
    assert model["capabilities"] == ["chat", "tools", "reasoning"]
    assert [p["id"] for p in model["providers"]] == ["qwen-proxy-default"]
    assert model["providers"][0]["is_default"] is True
    status, body = await api.get("/api/models/none-such")
    assert_error(status, body, 404, "model_not_found")


async def test_create_conflict_and_validation(api: Api) -> None:
    payload = {
        "id": "m.v1_x-2",
        "name": "M",
        "description": "d",
        "capabilities": ["chat", "tools", "chat"],
    }
    status, body = await api.post("/api/models", payload)
    assert status == 201
    assert body["model"]["capabilities"] == ["chat", "tools"]  # repeats dropped, order kept
    assert body["model"]["description"] == "d"
    status, body = await api.post("/api/models", {"id": "m.v1_x-2", "name": "Other"})
    assert_error(status, body, 409, "model_exists")
    status, body = await api.get("/api/models/m.v1_x-2")
    assert body["model"]["name"] == "M"

    cases = [
        ({"name": "x"}, {"id"}),
        ({"id": "x"}, {"name"}),
        ({"id": "UPPER", "name": "x"}, {"id"}),
        ({"id": "has space", "name": "x"}, {"id"}),
        ({"id": "x", "name": "x", "capabilities": "chat"}, {"capabilities"}),
        ({"id": "x", "name": "x", "capabilities": ["chat", 1]}, {"capabilities"}),
        ({"id": "x", "name": "x", "capabilities": [""]}, {"capabilities"}),
        ({"id": "x", "name": "x", "description": 5}, {"description"}),
        ({"id": 5, "name": 6}, {"id", "name"}),
    ]
    for payload, fields in cases:
        status, body = await api.post("/api/models", payload)
        assert_error(status, body, 400, "validation_failed")
        assert {d["field"] for d in body["error"]["details"]} == fields, payload
    status, body = await api.get("/api/models")
    assert body["total"] == 5


async def test_update(api: Api) -> None:
    status, body = await api.get("/api/models/qwen3-max")
    before = body["model"]
    status, body = await api.put(
        "/api/models/qwen3-max", {"name": "Max", "capabilities": ["chat"], "description": None}
    )
    assert status == 200
    model = body["model"]
    assert (model["name"], model["capabilities"], model["description"]) == ("Max", ["chat"], None)
    assert model["created_at"] == before["created_at"]
    assert model["updated_at"] >= before["updated_at"]
    status, body = await api.get("/api/models?capability=tools")
    assert "qwen3-max" not in [m["id"] for m in body["models"]]
    status, body = await api.put("/api/models/qwen3-max", {"description": "only this"})
    assert body["model"]["name"] == "Max" and body["model"]["description"] == "only this"
    # The stored capabilities are an array, also after an update.
    status, body = await api.get("/api/models/qwen3-max")
    assert json.dumps(body["model"]["capabilities"]) == '["chat"]'

    for payload, fieldname in (
        ({}, "body"),
        ({"id": "renamed"}, "body"),
        ({"name": ""}, "name"),
        ({"capabilities": [1]}, "capabilities"),
    ):
        status, body = await api.put("/api/models/qwen3-max", payload)
        assert_error(status, body, 400, "validation_failed")
        assert [d["field"] for d in body["error"]["details"]] == [fieldname]
    status, body = await api.put("/api/models/none-such", {"name": "x"})
    assert_error(status, body, 404, "model_not_found")


async def test_delete_removes_links(api: Api) -> None:
    await api.post(
        "/api/providers/lm-studio-default/models", {"model_id": "qwen3-max", "is_default": True}
    )
    status, body = await api.delete("/api/models/qwen3-max")
    assert status == 200
    assert body == {"success": True, "message": "Model deleted"}
    status, body = await api.get("/api/models/qwen3-max")
    assert_error(status, body, 404, "model_not_found")
    for provider in ("qwen-proxy-default", "lm-studio-default"):
        status, body = await api.get(f"/api/providers/{provider}/models")
        assert "qwen3-max" not in [m["id"] for m in body["models"]]
    status, body = await api.get("/api/providers/qwen-proxy-default")
    assert len(body["models"]) == 3
    status, body = await api.get("/api/models")
    assert body["total"] == 3
    status, body = await api.delete("/api/models/qwen3-max")
    assert_error(status, body, 404, "model_not_found")
    # The id is free again, and the new model has no links.
    status, body = await api.post("/api/models", {"id": "qwen3-max", "name": "New"})
    assert status == 201
    status, body = await api.get("/api/models/qwen3-max")
    assert body["model"]["providers"] == []
