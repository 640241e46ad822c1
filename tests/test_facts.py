"""The code cites the fact sheet (``FACTS.md 2.2``, ``FACTS.md section 5``, ``FACTS.md E12b``,
``FACTS.md b.4 item 14``): docs/FACTS.md is in the repository, and every citation names a
section, an experiment or an item it has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FACTS = ROOT / "docs" / "FACTS.md"

#: ``FACTS.md`` then what it cites: a section (``1``, ``2.2``, ``b.4``, ``2.2-2.3``), an
#: experiment (``E7``, ``E12b``), an item of section 4 (``b.4 item 14``, ``4 item 2``).
CITE = re.compile(r"FACTS\.md(?:\s+section)?\s+((?:b\.|E)?\d+[a-z]?(?:\.\d+)?"
                  r"(?:-\d+(?:\.\d+)?)?(?:\s+item\s+\d+)?)")


def _sources() -> list[Path]:
    dirs = ("cowbench", "sim", "real", "tests", "benchmarks", "scripts", "notebooks")
    files = [p for d in dirs for p in (ROOT / d).rglob("*")
             if p.suffix in (".py", ".md", ".yaml", ".sh", ".ipynb") and p.is_file()]
    return [*files, ROOT / "README.md", *(ROOT / "scenarios").rglob("*.yaml")]


def _flat(text: str) -> str:
    """Citations broken over lines of a comment or a docstring, on one line."""
    return re.sub(r"\s*\n\s*(?:#:?\s*)?", " ", text)


def citations() -> list[tuple[str, str]]:
    out = []
    for path in _sources():
        if path.resolve() == Path(__file__).resolve():
            continue
        for m in CITE.finditer(_flat(path.read_text(errors="replace"))):
            out.append((str(path.relative_to(ROOT)), m.group(1)))
    return out


def _section(sheet: str, ref: str) -> str:
    """The text of section ``ref`` (``4``, ``b.4``, ``2.2``) up to the next of its level."""
    level = "##" if re.fullmatch(r"\d+", ref) else "###"
    start = re.search(rf"^{level} {re.escape(ref)}\.? ", sheet, re.M)
    if start is None:
        return ""
    end = re.compile(rf"^#{{2,{len(level)}}} ", re.M).search(sheet, start.end())
    return sheet[start.start():end.start() if end else len(sheet)]


def _has(sheet: str, cited: str) -> bool:
    item = re.search(r"^(\S+)\s+item\s+(\d+)$", cited)
    if item:  # an item of the section cited
        return bool(re.search(rf"^{item.group(2)}\. ", _section(sheet, item.group(1)), re.M))
    ref = cited
    for part in ref.split("-"):
        if part.startswith("E"):  # an experiment: "**E12b**" or "E12b" in section 3
            if not re.search(rf"\b{part}\b", sheet):
                return False
        elif part.startswith("b."):
            if not re.search(rf"^### {re.escape(part)} ", sheet, re.M):
                return False
        elif "." in part:
            if not re.search(rf"^### {re.escape(part)} ", sheet, re.M):
                return False
        elif not re.search(rf"^## {part}\. ", sheet, re.M):
            return False
    return True


def test_the_fact_sheet_the_code_cites_is_in_the_repository() -> None:
    assert FACTS.is_file()
    found = citations()
    assert len(found) > 50  # the code does cite it
    sheet = FACTS.read_text()
    missing = [(where, cited) for where, cited in found if not _has(sheet, cited)]
    assert not missing, missing


def test_a_citation_of_what_the_sheet_lacks_is_found() -> None:
    sheet = FACTS.read_text()
    assert _has(sheet, "2.2") and _has(sheet, "b.4 item 14") and _has(sheet, "E12b")
    assert _has(sheet, "2.2-2.3") and _has(sheet, "5")
    assert not _has(sheet, "2.9") and not _has(sheet, "E99") and not _has(sheet, "b.4 item 99")
    assert not _has(sheet, "9") and not _has(sheet, "b.4 item 13")  # item 13 is b.3's
