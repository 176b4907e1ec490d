"""The web pages: sign-in, officer review, operator dashboard, live events, static files, and
the API docs (/docs, /redoc) served from the Swagger UI and ReDoc files that the
`fastapi-offline` wheel ships: nothing is loaded from a CDN."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from central.routes import (
    auth,
    web_dashboard,
    web_events,
    web_images,
    web_rejections,
    web_review,
)
from central.routes.web_render import WEB_DIR

DOCS_STATIC = "/docs-static"


def install_web(app: FastAPI) -> None:
    """Mount the page routers and `/static` (our own CSS, JS and chart code, nothing remote)."""
    for module in (auth, web_review, web_images, web_dashboard, web_events, web_rejections):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    install_docs(app)


def _docs_assets() -> Path:
    spec = find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("the fastapi-offline package (API docs assets) is not installed")
    return Path(spec.origin).parent / "static"


def install_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc over /openapi.json, with their scripts from our own
    server; create the app with `docs_url=None, redoc_url=None`."""
    app.mount(DOCS_STATIC, StaticFiles(directory=_docs_assets()), name="docs-static")
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=title,
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
        )  # fmt: skip

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json", title=title,
            redoc_js_url=f"{DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_STATIC}/favicon.png", with_google_fonts=False,
        )  # fmt: skip
