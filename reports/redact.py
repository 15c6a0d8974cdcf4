"""Secrets out of everything the reports write.

A secret can reach a report in many spellings: as written, percent-encoded (inside a
URI), base64 (a Kubernetes Secret, an HTTP Basic header), and each of those escaped
for HTML, XML, JSON or a Python repr. Every spelling is masked.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape as xml_escape

MASK = "***"
# A base64 fragment shorter than this could match by chance; secrets are at least 8 characters.
_MIN_BASE64_CORE = 8


def encodings(secret: str) -> set[str]:
    """The secret as written, percent-encoded and base64-encoded (what a grep for it must look for)."""
    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    forms |= base64_cores(secret)
    return {f for f in forms if f}


def base64_cores(secret: str) -> set[str]:
    """The base64 characters that encode only `secret`, at each of the three alignments it can have
    inside a longer encoded text (e.g. `user:secret` in an HTTP Basic header), in both alphabets."""
    data = secret.encode()
    found = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode()
        start = -(-8 * shift // 6)  # the first character holding no bit of the padding in front
        end = 8 * (shift + len(data)) // 6  # past the last character holding only the secret's bits
        core = encoded[start:end]
        if len(core) >= _MIN_BASE64_CORE:
            found |= {core, core.replace("+", "-").replace("/", "_")}
    return found


def _escaped(text: str) -> set[str]:
    as_json = json.dumps(text)[1:-1]
    return {text, html.escape(text), html.escape(text, quote=False), as_json, html.escape(as_json),
            xml_escape(text, {'"': "&quot;"}), xml_escape(text, {'"': "&quot;", "'": "&apos;"}), repr(text)[1:-1]}


class Redactor:
    def __init__(self, secrets: list[str] = ()):
        variants: set[str] = set()
        for secret in secrets:
            if secret:
                for form in encodings(secret):
                    variants |= _escaped(form)
        # Longest first: a spelling that contains another is masked whole.
        self.variants = sorted((v for v in variants if v), key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.variants:
            value = value.replace(secret, MASK)
        return value

    def file(self, path: Path) -> None:
        if path.exists():
            original = path.read_text(errors="replace")
            cleaned = self.text(original)
            if cleaned != original:
                path.write_text(cleaned)
