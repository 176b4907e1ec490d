"""Page language: Vietnamese (default) or English, chosen by `?lang=` and remembered in a cookie.

Messages live in `central/web/i18n/<lang>.json`, keyed by short English ids; a key missing from
a language falls back to English, then to the key itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

from fastapi import Request, Response

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LANG_COOKIE = "sg_lang"
MESSAGES_DIR = Path(__file__).resolve().parent / "web" / "i18n"


@cache
def messages(lang: str) -> dict[str, str]:
    """The message table of one language."""
    return json.loads((MESSAGES_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def language(request: Request) -> str:
    """The language asked for by `?lang=`, else the cookie, else Vietnamese."""
    for value in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if value in LANGUAGES:
            return value
    return DEFAULT_LANGUAGE


def remember_language(request: Request, response: Response) -> None:
    """Keep a `?lang=` choice in a cookie for the next pages."""
    lang = request.query_params.get("lang")
    if lang in LANGUAGES and request.cookies.get(LANG_COOKIE) != lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", path="/")


def translator(lang: str) -> Callable[[str], str]:
    """`t(key)` for templates: the message in `lang`, English, or the key."""
    table, fallback = messages(lang), messages("en")

    def t(key: str) -> str:
        return table.get(key) or fallback.get(key) or key

    return t
