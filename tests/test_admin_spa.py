"""The admin app served at /admin from a build folder: files with their types and cache rules,
client-side routes answered with index.html, and a 503 that says how to build when there is
no build."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tollgate.app import create_app
from tollgate.config import DEFAULT_ADMIN_DIST, Settings

INDEX = (
    '<!doctype html><html><head><script type="module" src="/admin/assets/index-3f9a1c2b.js">'
    '</script></head><body><div id="root"></div></body></html>'
)
SCRIPT = "console.log('admin');"
STYLE = "body { margin: 0 }"


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(INDEX)
    (folder / "assets" / "index-3f9a1c2b.js").write_text(SCRIPT)
    (folder / "assets" / "index-77aa01fe.css").write_text(STYLE)
    (folder / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    return folder


async def served(settings: Settings, dist: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(dataclasses.replace(settings, admin_dist=dist))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tollgate.test") as c:
            yield c


@pytest.fixture
async def spa(settings: Settings, dist: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in served(settings, dist):
        yield c


@pytest.fixture
async def unbuilt(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in served(settings, tmp_path / "no-dist-here"):
        yield c


def test_the_default_build_folder_is_the_frontends_dist() -> None:
    assert DEFAULT_ADMIN_DIST.parts[-3:] == ("frontend", "admin", "dist")
    assert (DEFAULT_ADMIN_DIST.parents[2] / "backend" / "tollgate").is_dir()


@pytest.mark.parametrize("path", ["/admin", "/admin/", "/admin/index.html"])
async def test_index_is_served_and_never_cached_stale(spa: httpx.AsyncClient, path: str) -> None:
    response = await spa.get(path)
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_hashed_assets_are_immutable_with_their_types(spa: httpx.AsyncClient) -> None:
    script = await spa.get("/admin/assets/index-3f9a1c2b.js")
    assert script.status_code == 200 and script.text == SCRIPT
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    style = await spa.get("/admin/assets/index-77aa01fe.css")
    assert style.headers["content-type"].startswith("text/css")
    assert style.headers["cache-control"] == "public, max-age=31536000, immutable"
    icon = await spa.get("/admin/favicon.svg")
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.headers["cache-control"] == "no-cache"


async def test_revalidation_answers_304(spa: httpx.AsyncClient) -> None:
    first = await spa.get("/admin/")
    again = await spa.get("/admin/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/admin/accounts",
        "/admin/accounts/42",
        "/admin/pricing/plans/pro/edit",
        "/admin/login?next=/",
    ],
)
async def test_client_side_routes_get_index_html(spa: httpx.AsyncClient, path: str) -> None:
    response = await spa.get(path)
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["cache-control"] == "no-cache"


async def test_a_missing_asset_is_a_404_not_the_index(spa: httpx.AsyncClient) -> None:
    response = await spa.get("/admin/assets/index-deadbeef.js")
    assert response.status_code == 404
    assert response.text != INDEX


@pytest.mark.parametrize(
    "path",
    ["/admin/../pyproject.toml", "/admin/%2e%2e/%2e%2e/etc/passwd", "/admin/..%2f..%2fsecret"],
)
async def test_paths_never_leave_the_build_folder(
    spa: httpx.AsyncClient, dist: Path, path: str
) -> None:
    (dist.parent / "secret").write_text("do not serve")
    response = await spa.get(path)
    assert "do not serve" not in response.text
    assert response.status_code in (200, 404)


async def test_only_get_and_head(spa: httpx.AsyncClient) -> None:
    assert (await spa.head("/admin/")).status_code == 200
    response = await spa.post("/admin/accounts")
    assert response.status_code == 405


async def test_root_redirects_to_the_admin_app(spa: httpx.AsyncClient) -> None:
    response = await spa.get("/")
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/admin/"


@pytest.mark.parametrize("path", ["/admin", "/admin/", "/admin/accounts/42"])
async def test_without_a_build_the_app_answers_503_with_how_to_build(
    unbuilt: httpx.AsyncClient, path: str
) -> None:
    response = await unbuilt.get(path)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("text/plain")
    assert "scripts/frontend-build" in response.text


async def test_a_build_made_while_running_is_served(settings: Settings, tmp_path: Path) -> None:
    later = tmp_path / "later"
    async for c in served(settings, later):
        assert (await c.get("/admin/")).status_code == 503
        later.mkdir()
        (later / "index.html").write_text(INDEX)
        assert (await c.get("/admin/")).text == INDEX


async def test_the_api_routes_are_untouched(spa: httpx.AsyncClient) -> None:
    assert (await spa.get("/healthz")).status_code == 200
    assert (await spa.get("/auth/me")).status_code == 401


async def test_dot_dot_in_the_route_path_is_not_followed(dist: Path) -> None:
    """The router hands the app whatever follows /admin/; a crafted one must stay inside."""
    from tollgate.admin_spa import AdminSpa

    (dist.parent / "secret").write_text("do not serve")
    app = AdminSpa(dist)
    for raw in ("../secret", "assets/../../secret", "/etc/passwd"):
        scope = {"type": "http", "method": "GET", "headers": [], "path_params": {"path": raw}}
        response = await app.get_response(app.get_path(scope), scope)
        assert getattr(response, "path", None) != str(dist.parent / "secret"), raw
