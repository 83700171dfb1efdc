"""Comments and messages speak of the project only: none points to a design document or a tracker
issue outside the repository. The README's layout is the map of the tree."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# spelled in pieces, so that this file does not match itself
OUTSIDE = re.compile("|".join([r"DESIGN" + r"\.md", r"\bissue" + r"s? ?#?\d+", r"\bthis " + r"issue\b",
                               r"\bthe " + r"issue(?:'s)?\b"]), re.IGNORECASE)
FILES = sorted(p for folder in ("src", "benchmarks", "tests", "scripts") for p in (ROOT / folder).rglob("*.py"))


def test_the_scan_sees_the_code():
    assert {"cli/app.py", "registry.py"} <= {p.relative_to(ROOT / "src/gitmodel").as_posix()
                                             for p in FILES if p.is_relative_to(ROOT / "src/gitmodel")}


@pytest.mark.parametrize("text", ["exit code from DESIGN" + ".md", "the goals of issue" + " 5",
                                  "The " + "issue's finding", "fixed in this " + "issue"])
def test_the_pattern_finds_what_it_must(text):
    assert OUTSIDE.search(text)


def test_no_comment_or_message_points_outside_the_repository():
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in FILES for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not found, "\n".join(found)


def test_the_readme_layout_names_every_module_and_only_modules_that_exist():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    package = root / "src" / "gitmodel"
    modules = {p.name for p in package.rglob("*.py")
               if p.name not in ("__init__.py", "__main__.py") and p.parent.name not in ("cli", "demo", "__pycache__")}
    named = set(re.findall(r"\b([a-z_0-9]+\.py)\b", layout))
    assert sorted(modules - named) == [], "modules the README's layout does not name"
    existing = {p.name for folder in ("src", "benchmarks", "scripts", "tests") for p in (root / folder).rglob("*.py")}
    assert sorted(named - existing) == [], "files the README's layout names that do not exist"
