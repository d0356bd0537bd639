from tests.support.daemon import Api, assert_error


async def test_health(api: Api) -> None:
    status, body = await api.get("/api/health")
    assert status == 200
    assert body["status"] == "ok" and body["service"] == "api-server"


async def test_unknown_route_is_json_404(api: Api) -> None:
    status, body = await api.get("/api/nope")
    assert_error(status, body, 404, "route_not_found")
