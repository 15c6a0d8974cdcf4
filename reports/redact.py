"""Secrets out of everything the reports write."""

from __future__ import annotations

import html
import json
from pathlib import Path

MASK = "***"


class Redactor:
    def __init__(self, secrets: list[str] = ()):
        variants: set[str] = set()
        for secret in secrets:
            if secret:
                # As written in text, in HTML and inside JSON strings.
                variants |= {secret, html.escape(secret), json.dumps(secret)[1:-1], html.escape(json.dumps(secret)[1:-1])}
        self.variants = sorted(variants, key=len, reverse=True)

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
