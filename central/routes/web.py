"""The web pages: sign-in, officer review, operator dashboard, live events, static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from central.routes import auth, web_dashboard, web_events, web_images, web_review
from central.routes.web_render import WEB_DIR


def install_web(app: FastAPI) -> None:
    """Mount the page routers and `/static` (our own CSS, JS and chart code, nothing remote)."""
    for module in (auth, web_review, web_images, web_dashboard, web_events):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
