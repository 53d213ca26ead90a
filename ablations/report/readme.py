"""The pages' generated blocks: text between `<!-- ablate:NAME -->` and `<!-- /ablate:NAME -->`
in the README or a docs/*.md page, which `ablate report` rewrites from `results/` (docs/hooks.py
serves the site). A block stands in one page only. Its links, written from the project root
(`reports/x.png`, `#heading`), are pointed as the page reaches them."""

from __future__ import annotations

import posixpath
import re
import unicodedata
from collections.abc import Callable, Iterator
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
    """The README and the docs/*.md pages beside it that exist, by name from the project root."""
    found = {README if readme.name == README else readme.name: readme} if readme.exists() else {}
    for path in sorted((readme.parent / DOCS).glob("*.md")):
        found[f"{DOCS}/{path.name}"] = path
    return found


def in_site(page: str) -> bool:
    return page.startswith(f"{DOCS}/")


def slug(title: str, *, site: bool) -> str:
    """A heading's anchor: Python-Markdown's toc rule on the site, else GitHub's."""
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
    """The file a page's relative link names, from the project root; None outside its reach."""
    path = link.split("#")[0]
    if not in_site(page):
        found = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
        return None if found.startswith("..") else found
    found = posixpath.normpath(path)  # the site's pages all sit at its top
    if found.startswith(".."):
        return None
    return found if found.startswith(f"{REPORTS}/") else f"{DOCS}/{found}"


def relink(body: str, *, page: str, anchors: Anchors) -> str:
    """A block's text with its links as `page` reaches them. A heading link goes to the page
    itself if it holds the heading, else to the first site page that does, else (from outside
    the site) to the README; with no such page, the link's text stays."""
    reachable = [name for name in anchors if in_site(name) or not in_site(page)]
    order = sorted(reachable, key=lambda name: (name != page, not in_site(name), name))

    def point(match: re.Match[str]) -> str:
        target = match["target"]
        if SCHEME.match(target):
            return match[0]
        path, _, anchor = target.partition("#")
        path = path or next((name for name in order if anchor in anchors[name]), "")
        link = "" if path == page and anchor else link_to(path, page=page) if path else None
        if link is None:
            return match["text"]
        suffix = f"#{anchor}" if anchor else ""
        return f"{match['image']}[{match['text']}]({link}{suffix})"

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
    if unknown := sorted(set(block_names(text)) - set(blocks)):
        raise _unknown(unknown[0], page=page, blocks=blocks)
    found = anchors or {page: heading_anchors(text, site=in_site(page))}

    def regenerate(match: re.Match[str]) -> str:
        body = relink(blocks[match["name"]](results), page=page, anchors=found)
        return match["open"] + body.rstrip("\n") + "\n" + match["close"]

    return BLOCK.sub(regenerate, text)


def _unknown(name: str, *, page: str, blocks: dict[str, BlockFn]) -> AblationsError:
    known = ", ".join(sorted(blocks))
    return AblationsError(f"{page}: block {name!r} has no generator; known: {known}")


def _refilled(
    readme: Path, blocks: dict[str, BlockFn], *, results: Path
) -> Iterator[tuple[str, Path, str, str]]:
    """Each page, its file, its text and its text with every block regenerated. A block in two
    places, or one with no generator, is an error naming the page, before any page is filled."""
    found = pages(readme)
    texts = {page: path.read_text(encoding="utf-8") for page, path in found.items()}
    where: dict[str, str] = {}
    for page, text in texts.items():
        for name in block_names(text):
            if name not in blocks:
                raise _unknown(name, page=page, blocks=blocks)
            if name in where:
                raise AblationsError(f"{page}: block {name!r} is also in {where[name]}; a block "
                                     "stands in one page only")  # fmt: skip
            where[name] = page
    anchors = all_anchors(texts)
    for page, text in texts.items():
        new = fill(text, blocks, results=results, page=page, anchors=anchors)
        yield page, found[page], text, new


def update(readme: Path, blocks: dict[str, BlockFn], *, results: Path) -> list[Path]:
    """Regenerate the blocks of every page in place; returns the pages that changed."""
    changed = []
    for _, path, text, new in _refilled(readme, blocks, results=results):
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def stale_blocks(
    readme: Path, blocks: dict[str, BlockFn], *, results: Path
) -> dict[str, list[str]]:
    """By page, the names of the blocks whose text differs from what `results` gives."""
    stale = {}
    for page, _, text, new in _refilled(readme, blocks, results=results):
        now, fresh = ({m["name"]: m["body"] for m in BLOCK.finditer(t)} for t in (text, new))
        if names := [name for name in now if now[name] != fresh[name]]:
            stale[page] = names
    return stale


def page_links(text: str) -> list[str]:
    """Every link and image target of a page, outside code."""
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    return [m["target"] for pattern in (LINK, REFERENCE) for m in pattern.finditer(prose)]


def broken_links(texts: dict[str, str], *, root: Path) -> list[str]:
    """Each relative link of `texts` (pages by name) that names no file, or no heading of a
    page, as `page: link (why)`."""
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
