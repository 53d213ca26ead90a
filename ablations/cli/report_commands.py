"""`ablate` subcommands over the registry and the results tables (list, complexity, golden,
recipes, report, collect, merge, pack), and `select`: the variants that globs name."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ablations import recipes
from ablations.cli.options import say
from ablations.measure import complexity, golden
from ablations.profiles import PROFILES
from ablations.registry import REGISTRY, AblationsError, list_variants
from ablations.results import collect, schemas
from ablations.results.table import read_table

LIST_COLUMNS = [
    "name", "family", "depth", "block", "residual", "shortcut", "stem", "stride_at", "width",
    "input_size", "num_classes", "params", "macs",
]  # fmt: skip


def select(patterns: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """Registered names matching `patterns` (all if none) minus `exclude`; a pattern that
    matches nothing is an error that suggests the closest names."""
    for pattern in patterns:
        if not list_variants(pattern):
            close = REGISTRY.closest(pattern)
            hint = f"closest: {', '.join(close)}" if close else "see `ablate list`"
            raise AblationsError(f"no registered variant matches {pattern!r}; {hint}")
    names = list_variants(list(patterns) or "*", exclude)
    if not names:
        raise AblationsError("every matching variant is excluded; loosen --exclude")
    return names


def cmd_list(args: argparse.Namespace) -> None:
    names = select(args.patterns, args.exclude)
    stored = read_table(args.results, schemas.COMPLEXITY) if args.results.exists() else None
    df = complexity.measure(names, stored=stored)
    columns = [*LIST_COLUMNS, "stage_blocks", "in_channels"]
    if args.format == "csv":
        df[columns].to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(json.dumps(df[columns].to_dict("records"), indent=1))
    else:
        thousands = dict.fromkeys(["params", "macs"], "{:,}".format)
        shown = df[LIST_COLUMNS].to_string(index=False, formatters=thousands)
        print(f"# {schemas.MACS_CONVENTION}\n{shown}")


def cmd_complexity(args: argparse.Namespace) -> None:
    names = select(args.patterns, args.exclude)
    table = complexity.update(args.out, names, rerun=args.rerun)
    print(f"{args.out}: {len(table)} rows ({len(names)} selected are up to date)")


def cmd_golden(args: argparse.Namespace) -> None:
    where = golden.table_path(args.results)
    if args.write:
        todo = golden.outdated(args.results)
        counted = f"counting {len(todo)}: {', '.join(todo[:8])}{' ...' if len(todo) > 8 else ''}"
        up_to_date = len(list_variants()) - len(todo)
        say(f"{where}: {up_to_date} registered variants up to date{'; ' + counted if todo else ''}")
        table = golden.write(args.path, results=args.results)
        print(f"{args.path}: wrote {len(table)} variants, the projection of {where}")
        return
    problems = golden.check(args.path, results=args.results)
    for line in problems:
        print(line)
    if problems:
        raise AblationsError(
            f"{len(problems)} differences between {args.path} and {where}; "
            "if the change is intended, run `ablate golden --write`"
        )
    print(f"{args.path}: every registered variant matches {where}")


def cmd_recipes(args: argparse.Namespace) -> None:
    rows = [{
        "recipe": r.name, "variant": r.variant, "dataset": r.dataset,
        "arms": ",".join(a for a in r.arms if a) or "-",
        "full budget": f"{r.settings['epochs']} epochs, batch {r.settings['batch_size']}",
        "claimed": "-" if r.claimed_accuracy is None else f"{r.claimed_accuracy:.2f}%",
    } for r in recipes.RECIPES.values()]  # fmt: skip
    print(pd.DataFrame(rows).to_string(index=False))
    print(
        "\nbudgets (--profile): " + "; ".join(f"{k}: {v}" for k, v in recipes.BUDGET_WORDS.items())
    )
    if args.verbose:
        for r in recipes.RECIPES.values():
            print(f"\n{r.name}: {r.tutorial}.")
            if r.choices:
                print(f"  choices where the tutorial is silent: {r.choices}")


DEFAULT_README = Path("README.md")
DEFAULT_REPORTS = Path("reports")


def cmd_report(args: argparse.Namespace) -> None:
    if not args.check_readme:
        _render(args.results, out=args.out, readme=args.readme)
        return
    from ablations.report import readme, readme_blocks

    found = readme.pages(args.readme)
    if not found:
        raise AblationsError(
            f"--check-readme: no {args.readme} and no {args.readme.parent / readme.DOCS}/*.md; "
            "give --readme PATH"
        )
    stale = readme.stale_blocks(args.readme, readme_blocks.BLOCKS, results=args.results)
    if stale:
        pages = "; ".join(f"{page}: blocks {', '.join(names)}" for page, names in stale.items())
        raise AblationsError(f"{pages} differ from {args.results}; run `ablate report`")
    print(f"{', '.join(found)}: every generated block matches {args.results}")


def _render(results: Path, *, out: Path, readme: Path | None) -> None:
    """Render `out` from `results`, and the marked blocks of `readme` and the docs pages beside
    it, but only from the results/ folder beside them: a run into another folder never
    rewrites the project's pages."""
    from ablations.report import readme_blocks, render  # matplotlib: only the commands that draw
    from ablations.report.readme import update

    for path in render.render(results=results, out=out):
        print(path)
    if readme is not None and results.resolve() == readme.resolve().parent / "results":
        for page in update(readme, readme_blocks.BLOCKS, results=results):
            print(page)


def report_run(results: Path, *, profile: str, reports: Path | None) -> None:
    """The report `ablate run` ends with. A committed profile's run into the results/ folder
    beside the README renders reports/ and the pages' blocks; any other renders
    `<results>/report/` and leaves them alone. `reports` (--reports) chooses the folder."""
    project = DEFAULT_README.resolve().parent / "results"
    committed = PROFILES[profile].committed and results.resolve() == project
    out = reports or (DEFAULT_REPORTS if committed else results / "report")
    _render(results, out=out, readme=DEFAULT_README if committed else None)
    if not committed:
        say(
            f"[ablate] report: {out / 'README.md'} (profile {profile} into {results}: the "
            f"committed {DEFAULT_REPORTS}/, {DEFAULT_README} and docs pages are left alone)"
        )


def cmd_collect(args: argparse.Namespace) -> None:
    runs = collect.collect(args.results)
    runs_dir = args.results / schemas.RUNS_DIR
    print(f"{args.results / schemas.RUNS_FILE}: {len(runs)} runs from {runs_dir}")


def cmd_merge(args: argparse.Namespace) -> None:
    from ablations.results import merge

    missing = [str(s) for s in args.sources if not s.exists()]
    if missing:
        raise AblationsError(
            f"no such file or folder: {', '.join(missing)}; give tarballs written by `ablate "
            "pack`, a results folder, or one CSV table"
        )
    recorded = merge.merge(args.sources, args.results)
    print(f"{args.results}: {recorded} finished run(s) recorded; `ablate report` renders them")


def cmd_pack(args: argparse.Namespace) -> None:
    from ablations.results import pack

    if not args.results.is_dir():
        raise AblationsError(f"--results {args.results} is not a folder; give a results folder")
    max_bytes, part_bytes = (None if mb is None else int(mb * 2**20)
                             for mb in (args.max_mb, args.part_mb))  # fmt: skip
    written, left_out = pack.pack(args.results, args.out, max_bytes=max_bytes,
                                  part_bytes=part_bytes)  # fmt: skip
    for path in written:
        print(f"{path}: {pack.size_text(path.stat().st_size)}")
    if max_bytes is not None and written[0].stat().st_size > max_bytes:
        say(
            f"ablate pack: {written[0].name} alone is over --max-mb {args.max_mb:g}; it is "
            "written anyway (the tables always go)"
        )
    for line in left_out:
        say(f"ablate pack: {line}")
