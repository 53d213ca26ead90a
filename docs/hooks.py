"""mkdocs hooks: what the site builds from outside docs/, so none of it can drift.

- The report: `reports/README.md` and its figures join the site as they are committed.
- The CLI reference: `cli.md` gets every `ablate` command's usage and options, written from the
  argparse parser that `ablate` itself runs.
- The report's links into docs/: the report links `../docs/PAGE.md` from reports/ in the
  repository; in the site the pages sit one level up, at `../PAGE.md`.

`ablate report` writes the generated blocks with links as each page reaches them (in the site
for docs pages), so they need nothing here.
"""

from __future__ import annotations

import argparse
import copy
import functools
import re
from pathlib import Path

from markdown.extensions.toc import slugify
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
REPORTS = "reports"
REPORT_FILES = ("*.md", "*.png", "*.svg")
CLI_PAGE = "cli.md"
CLI_MARKER = "<!-- cli:reference -->"
WIDTH = 78  # usage lines wrap here, whatever the terminal is: a code block's width

LIST_ITEM = re.compile(r"^(?:[-*+]|\d+\.)\s")
DOCS_LINK = re.compile(r"\]\(\.\./docs/")  # a report's link to a docs page, from reports/


def on_files(files: Files, *, config: MkDocsConfig) -> Files:
    """Add the committed report and its figures, under reports/ as in the repository."""
    folder = ROOT / REPORTS
    for pattern in REPORT_FILES:
        for path in sorted(folder.glob(pattern)):
            uri = f"{REPORTS}/{path.name}"
            files.append(
                File(
                    uri,
                    src_dir=str(ROOT),
                    dest_dir=config.site_dir,
                    use_directory_urls=config.use_directory_urls,
                )
            )
    return files


def on_page_markdown(markdown: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri == CLI_PAGE:
        if CLI_MARKER not in markdown:
            raise PluginError(f"{CLI_PAGE} lacks {CLI_MARKER}, where the reference goes")
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if page.file.src_uri.startswith(f"{REPORTS}/"):
        markdown = DOCS_LINK.sub("](../", markdown)
    return separate_blocks(markdown)


def separate_blocks(markdown: str) -> str:
    """Blank lines where GitHub needs none but Python-Markdown does: between a table and a line
    of text right under it (else one more row), and between a lead-in ending in a colon and the
    list right under it (else one paragraph)."""
    out: list[str] = []
    in_fence = False
    for line in markdown.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        elif not in_fence and out and line.strip() and _needs_blank(out[-1], line):
            out.append("")
        out.append(line)
    return "\n".join(out)


def _needs_blank(previous: str, line: str) -> bool:
    after_table = previous.startswith("|") and not line.startswith("|")
    list_after_lead_in = bool(LIST_ITEM.match(line)) and previous.rstrip().endswith(":")
    return after_table or (list_after_lead_in and not LIST_ITEM.match(previous))


@functools.cache
def cli_reference() -> str:
    """Every `ablate` command: a summary table, then each command's usage and options."""
    from ablations.cli import build_parser  # torch loads with it: only when the page is built

    parser = build_parser()
    commands = subcommands(parser)
    summary = ["**commands**", "", "| command | what it does |", "|---|---|"]
    summary += [f"| [`ablate {name}`](#{slugify('ablate ' + name, '-')}) | {cell(help)} |"
                for name, (_, help) in commands.items()]  # fmt: skip
    top = command_section("ablate", parser, parser.description or "")
    sections = [
        command_section(f"ablate {name}", sub, help) for name, (sub, help) in commands.items()
    ]
    return "\n".join([top, *summary, "", *sections])


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """The parser's subcommands in the order `ablate --help` lists them, with their help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return {name: (sub, helps.get(name, "")) for name, sub in action.choices.items()}
    raise PluginError("the ablate parser has no subcommands")


def command_section(title: str, parser: argparse.ArgumentParser, help: str) -> str:
    """A command's heading, help, usage and a table of options per argument group."""
    parser.formatter_class = functools.partial(argparse.HelpFormatter, width=WIDTH)
    usage = parser.format_usage().removeprefix("usage: ").rstrip()
    parts = [f"## {title}", "", sentence(help), "", "```text", usage, "```", ""]
    for group in parser._action_groups:
        rows = [option_row(parser, action) for action in group._group_actions if shown(action)]
        if rows:
            title = {"positional arguments": "arguments", "optional arguments": "options"}
            parts += [f"**{title.get(group.title or '', group.title)}**", ""]
            parts += ["| option | what it sets |", "|---|---|", *rows, ""]
    return "\n".join(parts)


def shown(action: argparse.Action) -> bool:
    """Whether an action gets a row: not --help, and not the subcommands (they get sections)."""
    hidden = (argparse._HelpAction, argparse._SubParsersAction)
    return action.help != argparse.SUPPRESS and not isinstance(action, hidden)


def option_row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    formatter = parser._get_formatter()
    plain = copy.copy(action)
    plain.choices = None  # the choices are listed in the text, once
    if action.option_strings:
        metavar = formatter._format_args(plain, action.dest.upper()) if action.nargs != 0 else ""
        names = ", ".join(f"`{s}{' ' + metavar if metavar else ''}`" for s in action.option_strings)
    else:
        names = f"`{formatter._format_args(plain, action.dest)}`"
    text = formatter._expand_help(action) if action.help else ""
    if action.choices is not None and not isinstance(action.choices, dict):
        text += f" (one of {', '.join(f'`{c}`' for c in action.choices)})"
    if action.required and action.option_strings:
        text += " (required)"
    if (value := default(action)) and "default" not in text:
        text += f" (default: {value})"
    return f"| {cell(names)} | {cell(text.strip())} |"


def default(action: argparse.Action) -> str:
    value = action.default
    if value is None or value is argparse.SUPPRESS or value == [] or action.nargs == 0:
        return ""
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return f"`{value}`"


def cell(text: str) -> str:
    """Text that stays in one table cell and reads as written: outside code spans, a pipe
    would end the cell, `<x>` would be a tag and `*` emphasis."""
    pieces = re.split(r"(`[^`]*`)", " ".join(text.split()))
    return "".join(p if p.startswith("`") else escape(p) for p in pieces)


def escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*")


def sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
