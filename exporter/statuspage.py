"""The status page: its static files (package data in exporter/ui/) served under /ui/.

The page is a client of the public JSON API like any back office; the server only hands out
files, with headers strict enough that a kiosk name can never run as script.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import falcon

UI_PREFIX = "/ui/"
PAGE = "index.html"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# No inline script or style anywhere: everything the page runs or draws comes from /ui/.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class StaticFile:
    content_type: str
    body: bytes
    etag: str


def load_files() -> dict[str, StaticFile]:
    """Every file of exporter/ui/ with a known type, read once when the app is built."""
    folder = resources.files("exporter").joinpath("ui")
    files = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            etag = f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
            files[entry.name] = StaticFile(_TYPES[suffix], body, etag)
    return files


def add_routes(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    """`/` and `/ui` lead to the page; `/ui/kiosk/{id}` is the same page (it routes itself)."""
    files = load_files()
    app.add_route("/", Redirect(UI_PREFIX))
    app.add_route("/ui", Redirect(UI_PREFIX))
    page = FileResource(files, PAGE)
    app.add_route(UI_PREFIX, page)
    app.add_route(UI_PREFIX + "kiosk/{kiosk_id:int}", page)
    app.add_route(UI_PREFIX + "{name}", FileResource(files))


def _secure(resp: falcon.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        resp.set_header(name, value)


class Redirect:
    def __init__(self, location: str) -> None:
        self._location = location

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _secure(resp)
        resp.status = falcon.HTTP_302
        resp.location = self._location

    on_head = on_get


class FileResource:
    """One fixed file (the page), or the file named in the URL among those loaded."""

    def __init__(self, files: dict[str, StaticFile], name: str | None = None) -> None:
        self._files = files
        self._name = name

    def on_get(self, req: falcon.Request, resp: falcon.Response, **params: object) -> None:
        _secure(resp)
        found = self._files.get(self._name or str(params.get("name")))
        if found is None:
            raise falcon.HTTPNotFound()
        resp.set_header("ETag", found.etag)
        resp.set_header("Cache-Control", "no-cache")
        if found.etag in (req.get_header("If-None-Match") or ""):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = found.content_type
        resp.data = found.body

    on_head = on_get
