"""Rendering pages: Jinja templates with the translator, user, CSRF token and security headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from central.auth import CurrentUser
from central.i18n import LANGUAGES, language, remember_language, translator

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
TEMPLATES = Jinja2Templates(directory=str(WEB_DIR / "templates"))

# Scripts and styles only from our own /static files: no inline code, no third-party origins.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    user: CurrentUser | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """A page (or fragment) in the request's language, with the user's CSRF token."""
    lang = language(request)
    response = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "t": translator(lang),
            "lang": lang,
            "languages": LANGUAGES,
            "user": user,
            "csrf_token": user.csrf_token if user else "",
            **context,
        },
        status_code=status_code,
    )
    response.headers.update(SECURITY_HEADERS)
    remember_language(request, response)
    return response
