"""The built-in chat page: one self-contained HTML file, and the strict CSP that fits it.

The page's only script and style are inline, so the Content-Security-Policy allows exactly those
two blocks by hash (nothing else can run or apply), forbids every external resource, and
requires Trusted Types so that no code path can turn a string into HTML.
"""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from importlib import resources

_BLOCK = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


@lru_cache(maxsize=1)
def page_html() -> bytes:
    return resources.files("steptrace_web").joinpath("static/page.html").read_bytes()


@lru_cache(maxsize=1)
def favicon_svg() -> bytes:
    return resources.files("steptrace_web").joinpath("static/favicon.svg").read_bytes()


def _hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


@lru_cache(maxsize=1)
def page_csp() -> str:
    scripts: list[str] = []
    styles: list[str] = []
    for kind, body in _BLOCK.findall(page_html().decode()):
        (scripts if kind == "script" else styles).append(_hash(body))
    return "; ".join(
        [
            "default-src 'none'",
            "script-src " + " ".join(scripts or ["'none'"]),
            "style-src " + " ".join(styles or ["'none'"]),
            "img-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )
