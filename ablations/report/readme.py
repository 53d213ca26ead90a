"""The figures the project's pages quote, generated from `results/` like the reports.

A page (the README, or a docs/*.md page of the site) states numbers (verdicts, errors, images/s,
counts) between markers,

    <!-- ablate:NAME -->
    ... generated text ...
    <!-- /ablate:NAME -->

and `ablate report` rewrites each block from `results/` with the function registered under NAME,
so a number in a page is always one a committed row backs. Text outside the markers is never
touched. A block stands in one page only, so one number is never quoted twice. `ablate report
--check-readme` (and a test) fails when a block has drifted from the results, which is how a
stale figure is caught before it lands.

A block function writes its links from the project root: a file as `reports/x.png`, a heading as
`#time-limited-gpus`. The page gets them as it reaches them: the README on GitHub, a docs page in
the site, where the report sits at `reports/` beside the pages (docs/hooks.py). A heading link
goes to the page that holds the heading; with no such page, the link's text stays and the link
goes.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from ablations.registry import AblationsError

README = "README.md"
DOCS = "docs"
REPORTS = "reports"

BLOCK = re.compile(
    r"(?P<open><!-- ablate:(?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /ablate:(?P=name) -->)",
    re.S,
)
LINK = re.compile(r"(?P<image>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)[^)]*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(?P<target>\S+)", re.M)
HEADING = re.compile(r"^#{1,6}[ \t]+(?P<title>.+?)[ \t]*#*[ \t]*$", re.M)
FENCE = re.compile(r"^[ \t]*(?P<mark>```|~~~).*?^[ \t]*(?P=mark)[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
ATTR_ID = re.compile(r"\s*\{[^}]*#(?P<id>[\w-]+)[^}]*\}$")  # `## Title {#id}` (attr_list)
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)

BlockFn = Callable[[Path], str]
Anchors = dict[str, set[str]]  # page (relative to the project root) -> its headings' anchors


def block_names(text: str) -> list[str]:
    return [m["name"] for m in BLOCK.finditer(text)]


def pages(readme: Path) -> dict[str, Path]:
    """The pages that may hold blocks, by name from the project root (the README's folder):
    the README and every docs/*.md page beside it, those that exist."""
    found = {README if readme.name == README else readme.name: readme} if readme.exists() else {}
    for path in sorted((readme.parent / DOCS).glob("*.md")):
        found[f"{DOCS}/{path.name}"] = path
    return found


def in_site(page: str) -> bool:
    """Whether a page is one of the site's (docs/), whose links the site resolves."""
    return page.startswith(f"{DOCS}/")


def slug(title: str, *, site: bool) -> str:
    """A heading's anchor. Site pages: Python-Markdown's toc rule (ASCII; a run of spaces and
    hyphens is one hyphen). Other pages: GitHub's (each space is a hyphen)."""
    text = LINK.sub(r"\g<text>", title).replace("`", "").replace("*", "")
    if site:
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
        return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def heading_anchors(text: str, *, site: bool) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets a numbered one."""
    found: set[str] = set()
    for match in HEADING.finditer(FENCE.sub("", text)):
        if site and (given := ATTR_ID.search(match["title"])):
            found.add(given["id"])
            continue
        anchor = base = slug(match["title"], site=site)
        for n in range(1, 100):
            if anchor not in found:
                break
            anchor = f"{base}{'_' if site else '-'}{n}"
        found.add(anchor)
    return found


def all_anchors(texts: dict[str, str]) -> Anchors:
    return {page: heading_anchors(text, site=in_site(page)) for page, text in texts.items()}


def link_to(target: str, *, page: str) -> str | None:
    """A link from `page` to a file named from the project root; None where the page cannot
    reach it (a site page reaches the docs pages and the report only)."""
    where, here = target, page
    if in_site(page):
        here = page.removeprefix(f"{DOCS}/")
        if target.startswith(f"{DOCS}/"):
            where = target.removeprefix(f"{DOCS}/")
        elif not target.startswith(f"{REPORTS}/"):
            return None
    return posixpath.relpath(where, posixpath.dirname(here) or ".")


def resolve(link: str, *, page: str) -> str | None:
    """The file a page's relative link names, from the project root; None where it leaves
    what the page can reach."""
    path = link.split("#")[0]
    if not in_site(page):
        found = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
        return None if found.startswith("..") else found
    found = posixpath.normpath(path)  # the site's pages all sit at its top
    if found.startswith(".."):
        return None
    return found if found.startswith(f"{REPORTS}/") else f"{DOCS}/{found}"


def heading_page(anchor: str, *, page: str, anchors: Anchors) -> str | None:
    """The page a heading link of `page` goes to: the page itself if it holds the heading, else
    the first site page that does, else (from outside the site) the README."""
    reachable = [name for name in anchors if in_site(name) or not in_site(page)]
    order = sorted(reachable, key=lambda name: (name != page, not in_site(name), name))
    return next((name for name in order if anchor in anchors[name]), None)


def relink(body: str, *, page: str, anchors: Anchors) -> str:
    """A block's text with its links (written from the project root) as `page` reaches them."""

    def point(match: re.Match[str]) -> str:
        target = match["target"]
        if SCHEME.match(target):
            return match[0]
        path, _, anchor = target.partition("#")
        if not path:
            path = heading_page(anchor, page=page, anchors=anchors) or ""
            if not path:
                return match["text"]
        link = "" if path == page and anchor else link_to(path, page=page)
        if link is None:
            return match["text"]
        if anchor:
            link += f"#{anchor}"
        return f"{match['image']}[{match['text']}]({link})"

    return LINK.sub(point, body)


def fill(
    text: str,
    blocks: dict[str, BlockFn],
    *,
    results: Path,
    page: str = README,
    anchors: Anchors | None = None,
) -> str:
    """`text` with every marked block regenerated; an unknown block name is an error naming the
    page (a typo should not leave a stale number in place silently)."""
    unknown = sorted(set(block_names(text)) - set(blocks))
    if unknown:
        raise _unknown(unknown[0], page=page, blocks=blocks)
    if anchors is None:
        anchors = {page: heading_anchors(text, site=in_site(page))}

    def regenerate(match: re.Match[str]) -> str:
        body = relink(blocks[match["name"]](results), page=page, anchors=anchors)
        return match["open"] + body.rstrip("\n") + "\n" + match["close"]

    return BLOCK.sub(regenerate, text)


def _unknown(name: str, *, page: str, blocks: dict[str, BlockFn]) -> AblationsError:
    known = ", ".join(sorted(blocks))
    return AblationsError(f"{page}: block {name!r} has no generator; known: {known}")


def read(readme: Path, blocks: dict[str, BlockFn]) -> dict[str, str]:
    """The text of each page; a block in two places, or one with no generator, is an error
    naming the page."""
    texts = {page: path.read_text(encoding="utf-8") for page, path in pages(readme).items()}
    where: dict[str, str] = {}
    for page, text in texts.items():
        for name in block_names(text):
            if name not in blocks:
                raise _unknown(name, page=page, blocks=blocks)
            if name in where:
                raise AblationsError(f"{page}: block {name!r} is also in {where[name]}; a block "
                                     "stands in one page only")  # fmt: skip
            where[name] = page
    return texts


def update(readme: Path, blocks: dict[str, BlockFn], *, results: Path) -> list[Path]:
    """Regenerate the blocks of every page in place; returns the pages that changed."""
    texts = read(readme, blocks)
    anchors = all_anchors(texts)
    changed = []
    for page, path in pages(readme).items():
        new = fill(texts[page], blocks, results=results, page=page, anchors=anchors)
        if new != texts[page]:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def stale_blocks(
    readme: Path, blocks: dict[str, BlockFn], *, results: Path
) -> dict[str, list[str]]:
    """By page, the names of the blocks whose text differs from what `results` gives."""
    texts = read(readme, blocks)
    anchors = all_anchors(texts)
    stale = {}
    for page, text in texts.items():
        fresh = fill(text, blocks, results=results, page=page, anchors=anchors)
        now = {m["name"]: m["body"] for m in BLOCK.finditer(text)}
        new = {m["name"]: m["body"] for m in BLOCK.finditer(fresh)}
        if names := [name for name in now if now[name] != new[name]]:
            stale[page] = names
    return stale


def page_links(text: str) -> list[str]:
    """Every link and image target of a page, outside code."""
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    return [m["target"] for pattern in (LINK, REFERENCE) for m in pattern.finditer(prose)]


def broken_links(texts: dict[str, str], *, root: Path) -> list[str]:
    """Each relative link of the pages that names no file, or no heading of a page, as
    `page: link (why)`. `texts` may add pages beyond the blocks' (reports/README.md)."""
    anchors = all_anchors(texts)
    broken = []
    for page, text in texts.items():
        for link in page_links(text):
            if SCHEME.match(link):
                continue
            target = page if link.startswith("#") else resolve(link, page=page)
            if target is None or not (root / target).exists():
                broken.append(f"{page}: {link} (no such file from this page)")
                continue
            anchor = link.partition("#")[2]
            if anchor and target.endswith(".md"):
                if target not in anchors:
                    found = (root / target).read_text(encoding="utf-8")
                    anchors[target] = heading_anchors(found, site=in_site(target))
                if anchor not in anchors[target]:
                    broken.append(f"{page}: {link} (no such heading in {target})")
    return broken
