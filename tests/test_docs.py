"""The documentation works: README.md and docs/*.md.

- Every relative link resolves: the file or directory exists, and a `#anchor` on
  a markdown target is the GitHub slug of one of its headings.
- Every code block marked runnable runs: a ```python fence whose previous line is
  `<!-- runnable -->` is run as a script in a fresh process (slow).

The convention is documented in docs/development.md ("The documentation is
tested").
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = "<!-- runnable -->"
#: Seconds a runnable block may take (the tour takes about 20 s on 2 cores).
TIMEOUT = 300

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[str]:
    """The lines of `text` with fenced code blocks blanked (line numbers kept)."""
    lines, fence = [], None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            lines.append("")
        elif fence is not None:
            if (
                match
                and match.group(1)[0] == fence[0]
                and len(match.group(1)) >= len(fence)
            ):
                if not match.group(2).strip():
                    fence = None
            lines.append("")
        else:
            lines.append(line)
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text in lower case, with
    every character but letters, marks, digits, `_`, `-` and spaces dropped, and
    spaces turned into `-`."""
    text = _CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    kept = (
        c for c in text.lower() if c in " -_" or unicodedata.category(c)[0] in "LMN"
    )
    return "".join(kept).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a markdown file's headings; repeats get `-1`, `-2`, …"""
    seen: dict[str, int] = {}
    for line in prose_lines(page.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            if count:
                seen.setdefault(f"{slug}-{count}", 1)
    return set(seen)


def links(page: Path) -> list[tuple[int, str]]:
    """`(line, target)` of every link and image in the prose of a page (not in
    code blocks or inline code)."""
    text = "\n".join(prose_lines(page.read_text(encoding="utf-8")))
    # Blank code spans but keep their newlines, so line numbers stay right.
    text = _CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(1))
        for match in _LINK.finditer(text)
    ]


def broken_links(page: Path) -> list[str]:
    """`"page:line: target (why)"` for every relative link of `page` that does
    not resolve; links with a scheme (https:, mailto:) are not checked."""
    broken = []
    for line, target in links(page):
        if _SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / unquote(path)).resolve() if path else page
        where = f"{page.name}:{line}: {target}"
        if not resolved.exists():
            broken.append(f"{where} (no such file)")
        elif anchor and resolved.suffix == ".md":
            if unquote(anchor) not in anchors(resolved):
                broken.append(f"{where} (no heading with this anchor)")
    return broken


def runnable_blocks(page: Path) -> list[tuple[int, str]]:
    """`(line, code)` of each block marked runnable: the line after the marker
    opens a ```python fence (anything else is an error, so that a misplaced
    marker cannot silently run nothing)."""
    lines = page.read_text(encoding="utf-8").split("\n")
    blocks = []
    for i, line in enumerate(lines):
        if line.strip() != RUNNABLE:
            continue
        opening = _FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not opening or opening.group(2).strip() != "python":
            raise ValueError(
                f"{page.name}:{i + 1}: {RUNNABLE} must be followed by a "
                f"```python fence, got {lines[i + 1] if i + 1 < len(lines) else ''!r}."
            )
        fence, code = opening.group(1), []
        for body in lines[i + 2 :]:
            if body.strip() == fence:
                break
            code.append(body)
        else:
            raise ValueError(f"{page.name}:{i + 2}: the runnable block never closes.")
        blocks.append((i + 3, "\n".join(code) + "\n"))
    return blocks


# ----------------------------------------------------------------- the checker


def test_github_slugs():
    assert github_slug("Data (`keras_mtl.data`)") == "data-keras_mtldata"
    assert (
        github_slug("Conversion funnels: ESMM, ESM², AITM and the KL bound")
        == "conversion-funnels-esmm-esm²-aitm-and-the-kl-bound"
    )
    assert github_slug("Where the step's time went") == "where-the-steps-time-went"
    assert (
        github_slug("Multi-task vs per task vs mean pooling (`a/b_c.py`)")
        == "multi-task-vs-per-task-vs-mean-pooling-ab_cpy"
    )
    assert github_slug("See [DUPN](dupn.md) now") == "see-dupn-now"


def test_link_checker_finds_bad_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text(
        "# Other page\n\n## Part `one`\n\n## Part one\n\n```\n# not a heading\n```\n",
        encoding="utf-8",
    )
    (tmp_path / "image.png").write_bytes(b"")
    page = tmp_path / "README.md"
    page.write_text(
        "# Top\n"
        "[ok](docs/other.md) [ok](docs/other.md#part-one) "
        "[ok](docs/other.md#part-one-1) [ok](#top) ![ok](image.png) [ok](docs)\n"
        "[web](https://example.com/missing) [mail](mailto:a@b.c)\n"
        "`[in code](nowhere.md)` and [split\nacross lines](docs/missing.md)\n"
        "```python\n[in a block](nowhere.md)\n```\n"
        "[bad anchor](docs/other.md#not-a-heading) [bad](#nope)\n"
        "[heading in a code block](docs/other.md#not-a-heading-1)\n"
        "![gone](images/gone.png)\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "README.md:4: docs/missing.md (no such file)",
        "README.md:9: docs/other.md#not-a-heading (no heading with this anchor)",
        "README.md:9: #nope (no heading with this anchor)",
        "README.md:10: docs/other.md#not-a-heading-1 (no heading with this anchor)",
        "README.md:11: images/gone.png (no such file)",
    ]


def test_runnable_blocks_are_found_and_a_stray_marker_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n<!-- runnable -->\n```python\nprint(1)\n```\n\n"
        "```python\nprint('not marked')\n```\n"
        "<!-- runnable -->\n````python\nx = '```'\nprint(x)\n````\n",
        encoding="utf-8",
    )
    assert runnable_blocks(page) == [(4, "print(1)\n"), (12, "x = '```'\nprint(x)\n")]
    page.write_text("<!-- runnable -->\n```bash\nls\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"page.md:1: .*```python fence"):
        runnable_blocks(page)


# ------------------------------------------------------------ the real pages


def test_every_page_is_linked_from_the_readme():
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for _, target in links(ROOT / "README.md")
    }
    assert [p.name for p in PAGES[1:] if p not in linked] == []
    assert len(PAGES) >= 9  # README + the eight topic pages at least


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_the_readme_tour_is_runnable():
    codes = [code for _, code in runnable_blocks(ROOT / "README.md")]
    assert any("km.build_mmoe(" in code for code in codes)


RUNNABLE_BLOCKS = [(page, line) for page in PAGES for line, _ in runnable_blocks(page)]


@functools.cache
def run_block(page: Path, line: int, workdir: Path):
    """Run the runnable block at `page:line` as `block.py` in `workdir`."""
    code = dict(runnable_blocks(page))[line]
    script = workdir / "block.py"
    script.write_text(code, encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    # The checkout's package, whatever else is installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH")) if p
    )
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def block_dirs(tmp_path_factory):
    """One fresh, empty working directory per runnable block."""
    return {key: tmp_path_factory.mktemp("block") for key in RUNNABLE_BLOCKS}


@pytest.mark.slow
@pytest.mark.parametrize(
    "page, line", RUNNABLE_BLOCKS, ids=[f"{p.name}:{n}" for p, n in RUNNABLE_BLOCKS]
)
def test_runnable_block_runs(page, line, block_dirs):
    workdir = block_dirs[page, line]
    result = run_block(page, line, workdir)
    assert result.returncode == 0, (
        f"{page.name}:{line} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    )
    # It wrote nothing beside itself (files go to a temporary directory).
    assert sorted(p.name for p in workdir.iterdir()) == ["block.py"]


@pytest.mark.slow
def test_the_tour_trains_exports_and_shows_the_gates(block_dirs):
    (page, line) = next(
        key
        for key in RUNNABLE_BLOCKS
        if key[0].name == "README.md"
        and "km.build_mmoe(" in dict(runnable_blocks(key[0]))[key[1]]
    )
    result = run_block(page, line, block_dirs[page, line])
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout.splitlines()
    assert any(re.search(r"[/\\]mmoe[/\\]1$", row) for row in out), out[-12:]
    header = next(row for row in out if row.split() == ["income", "marital"])
    rows = out[out.index(header) + 1 : out.index(header) + 9]
    assert [row.split()[0] for row in rows] == [f"expert_{i}" for i in range(8)]
    weights = [[float(v) for v in row.split()[1:]] for row in rows]
    for column in zip(*weights, strict=True):  # each gate's weights sum to 1
        assert sum(column) == pytest.approx(1.0, abs=1e-4)
        assert all(0.0 < w < 1.0 for w in column)
