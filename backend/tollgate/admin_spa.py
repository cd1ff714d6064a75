"""The admin app (a Vite build with base /admin/) served at /admin.

- A file of the build is served as is: `assets/` holds Vite's content-hashed files, cached for
  a year as immutable; everything else (index.html, favicon, ...) must be revalidated (ETag).
- Any other path under /admin is a route of the app itself: it gets index.html, so a reload
  or a bookmark of /admin/accounts/42 works. A missing file under assets/ is a 404 instead: a
  stale chunk must fail as a script, not load an HTML page.
- Without a build (no index.html), /admin answers 503 saying how to build it. The folder is
  looked at on each request, so building while the server runs is enough.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from pathlib import Path

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Receive, Scope, Send

PREFIX = "/admin"
HASHED_DIR = "assets"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# What every answer of the app carries: no MIME sniffing, and never framed by another site.
SAFETY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
NOT_BUILT = (
    "The admin app is not built.\n"
    "Build it with `scripts/frontend-build` (needs Node.js and npm), or point\n"
    "TOLLGATE_ADMIN_DIST at a built dist folder, then reload this page.\n"
)

for _type, _ext in (
    ("text/javascript", ".js"),
    ("text/javascript", ".mjs"),
    ("text/css", ".css"),
    ("image/svg+xml", ".svg"),
    ("font/woff2", ".woff2"),
    ("application/manifest+json", ".webmanifest"),
    ("application/json", ".map"),
):
    mimetypes.add_type(_type, _ext)


class AdminSpa(StaticFiles):
    def __init__(self, dist: Path) -> None:
        super().__init__(directory=dist, check_dir=False)
        self.dist = dist
        # The folder may appear after start; get_response looks for it on each request.
        self.config_checked = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.get_response(self.get_path(scope), scope)
        except HTTPException as exc:
            response = PlainTextResponse(
                exc.detail, status_code=exc.status_code, headers=exc.headers
            )
        response.headers.update(SAFETY_HEADERS)
        await response(scope, receive, send)

    def get_path(self, scope: Scope) -> str:
        path: str = scope.get("path_params", {}).get("path", "")
        return os.path.normpath(os.path.join(*path.split("/"))) if path else "."

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        index, index_stat = await anyio.to_thread.run_sync(self.lookup_path, "index.html")
        if index_stat is None or not stat.S_ISREG(index_stat.st_mode):
            return PlainTextResponse(NOT_BUILT, status_code=503, headers={"Retry-After": "60"})
        if path != "." and path != "index.html":
            try:
                full_path, found = await anyio.to_thread.run_sync(self.lookup_path, path)
            except (OSError, ValueError):
                full_path, found = "", None
            if found is not None and stat.S_ISREG(found.st_mode):
                return self.file_response(full_path, found, scope)
            if path.split(os.sep, 1)[0] == HASHED_DIR:
                raise HTTPException(status_code=404)
        return self.file_response(index, index_stat, scope)

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        relative = Path(full_path).relative_to(Path(self.dist).resolve())
        hashed = relative.parts[:1] == (HASHED_DIR,)
        response = FileResponse(
            full_path,
            status_code=status_code,
            stat_result=stat_result,
            headers={"Cache-Control": IMMUTABLE if hashed else REVALIDATE},
        )
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


async def to_admin(_: object) -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=302)
