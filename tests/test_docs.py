"""The user docs: one entry point that reaches every page, no dead relative links, no lab notebook.

Every ``.md`` under ``docs/`` must be reachable from ``docs/index.md`` through relative links; every
relative link in ``docs/`` and ``README.md`` must name a file that exists (and, with ``#anchor``, a
heading of that file); and no page may speak of issues or of training runs by their code names: user
docs say what a feature does and what was measured (the run history is in ``research/``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
INDEX = DOCS / "index.md"

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
"""An inline Markdown link or image: the target is group 1."""
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
ISSUE = re.compile(r"\bissue\s*#?\d|\bthe (?:\w+ )?issue's\b", re.I)
"""A reference to the project's issue tracker ("issue 2", "issue 4's targets", "the build issue's")."""
RUN_CODE_NAMES = re.compile(
    r"\b(?:KS[01]|KL[01]|F[2-8]|F3[bc]|G[12]|H[12]|H2s[12]|W[12]|S8x?|M40|M64|N[12]|P1|R[12]|FT[1-3]|L1|K[1-3]"
    r"|s1|c1)\b|\bhelper-(?:\d|fitted)"
)
"""Code names of the default student's training runs, and of the helper runs that measured converters."""


def _pages(root: Path) -> list[Path]:
    return sorted((root / "docs").rglob("*.md"))


def _text(page: Path) -> str:
    """The page without fenced code blocks (a link or a name inside code is not prose)."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", _text(page), re.M)}


def _relative_links(page: Path) -> list[tuple[str, Path, str]]:
    """(link as written, file it names, anchor) for every relative link on ``page``."""
    links = []
    for m in LINK.finditer(_text(page)):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http:, mailto:, an anchor on the same page
        path, _, anchor = target.partition("#")
        links.append((target, (page.parent / path).resolve(), anchor))
    return links


def dead_links(root: Path) -> list[str]:
    """Every relative link in ``docs/`` and ``README.md`` whose file (or heading) does not exist."""
    dead = []
    for page in [root / "README.md", *_pages(root)]:
        for target, path, anchor in _relative_links(page):
            if not path.exists():
                dead.append(f"{page.relative_to(root)}: {target} (no such file)")
            elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
                dead.append(f"{page.relative_to(root)}: {target} (no such heading)")
    return dead


def unreachable(root: Path) -> list[str]:
    """Pages under ``docs/`` that no chain of relative links from ``docs/index.md`` reaches."""
    docs = (root / "docs").resolve()
    index = docs / "index.md"
    seen, todo = {index}, [index]
    while todo:
        page = todo.pop()
        for _, path, _ in _relative_links(page):
            if path.suffix == ".md" and path.is_file() and path.is_relative_to(docs) and path not in seen:
                seen.add(path)
                todo.append(path)
    return [str(p.relative_to(root)) for p in _pages(root) if p.resolve() not in seen]


def lab_notes(root: Path) -> list[str]:
    """Lines of ``docs/`` and ``README.md`` that mention an issue or a training run by its code name."""
    found = []
    for page in [root / "README.md", *_pages(root)]:
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            for pattern in (ISSUE, RUN_CODE_NAMES):
                m = pattern.search(line)
                if m:
                    found.append(f"{page.relative_to(root)}:{n}: {m.group(0)!r} in {line.strip()[:100]}")
    return found


def test_the_index_exists_and_reaches_every_page() -> None:
    assert INDEX.is_file()
    assert unreachable(ROOT) == []


def test_every_relative_link_names_an_existing_file() -> None:
    assert dead_links(ROOT) == []


def test_no_page_mentions_issues_or_run_code_names() -> None:
    assert lab_notes(ROOT) == []


def test_the_readme_points_at_the_index() -> None:
    readme = ROOT / "README.md"
    assert (DOCS / "index.md").resolve() in {path for _, path, _ in _relative_links(readme)}


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("files", "check", "expected"),
    [
        # a page nothing links to, and one reached only through another page
        ({"docs/index.md": "[a](a.md)", "docs/a.md": "[b](sub/b.md)", "docs/sub/b.md": "", "docs/c.md": ""},
         unreachable, ["docs/c.md"]),
        # a missing file, a missing heading; a link inside a code block and a web link are not checked
        ({"README.md": "[i](docs/index.md) [x](docs/nope.md)",
          "docs/index.md": "# Top\n[t](#top) [h](a.md#two-words) [bad](a.md#none) [w](https://e.x/y.md)\n"
                           "```\n[c](gone.md)\n```\n",
          "docs/a.md": "## Two words\n"},
         dead_links, ["README.md: docs/nope.md (no such file)", "docs/index.md: a.md#none (no such heading)"]),
        ({"README.md": "As issue 4 asks.", "docs/index.md": "Run KS0, the build issue's target, L1d cache, l1-l7."},
         lab_notes, ["README.md:1: 'issue 4' in As issue 4 asks.",
                     "docs/index.md:1: \"the build issue's\" in Run KS0, the build issue's target, L1d cache, l1-l7.",
                     "docs/index.md:1: 'KS0' in Run KS0, the build issue's target, L1d cache, l1-l7."]),
    ],
)
def test_the_checks_find_what_they_look_for(tmp_path: Path, files: dict[str, str], check, expected) -> None:
    files = {"README.md": "", **files}
    assert check(_write(tmp_path, files)) == expected
