"""The acceptance criteria catalog (a copy of ../shared/spec/criteria.md beside this file)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CATALOG = Path(__file__).with_name("criteria.md")
# Where a criterion can be checked, as the catalog's "Scope says ..." list names them.
SCOPES = ("service", "k8s", "gpu", "disruptive")
_ROW = re.compile(r"^\|\s*(?P<id>3[.\d]*-[a-z-]+)\s*\|\s*(?P<scope>[a-z0-9, ]+?)\s*\|\s*(?P<text>.+?)\s*\|\s*$")


@dataclass(frozen=True)
class Criterion:
    id: str
    scopes: tuple[str, ...]
    text: str
    section: str


@lru_cache
def load(path: Path = CATALOG) -> tuple[Criterion, ...]:
    section = ""
    found = []
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        match = _ROW.match(line)
        if match:
            scopes = tuple(s.strip() for s in match["scope"].split(","))
            found.append(Criterion(match["id"], scopes, match["text"], section))
    return tuple(found)


def by_id() -> dict[str, Criterion]:
    return {c.id: c for c in load()}
