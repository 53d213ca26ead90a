"""`ablate` subcommands over the registry and the results tables: list, complexity, golden,
recipes, report, collect, merge, pack; and `select`, the variant globs that every command
takes."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ablations import recipes
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


def _format_table(df: pd.DataFrame) -> str:
    shown = df[LIST_COLUMNS].copy()
    for column in ("params", "macs"):
        shown[column] = shown[column].map("{:,}".format)
    return f"# {schemas.MACS_CONVENTION}\n{shown.to_string(index=False)}"


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
        print(_format_table(df))


def cmd_complexity(args: argparse.Namespace) -> None:
    names = select(args.patterns, args.exclude)
    table = complexity.update(args.out, names, rerun=args.rerun)
    print(f"{args.out}: {len(table)} rows ({len(names)} selected are up to date)")


def cmd_golden(args: argparse.Namespace) -> None:
    where = golden.table_path(args.results)
    if args.write:
        todo = golden.outdated(args.results)
        counted = f"counting {len(todo)}: {', '.join(todo[:8])}{' ...' if len(todo) > 8 else ''}"
        print(f"{where}: {len(list_variants()) - len(todo)} registered variants up to date"
              f"{'; ' + counted if todo else ''}", file=sys.stderr, flush=True)  # fmt: skip
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
SCRATCH_REPORT = "report"  # a run's own report: <results>/report/


def cmd_report(args: argparse.Namespace) -> None:
    if args.check_readme:
        _check_readme(args.readme, results=args.results)
        return
    _render(args.results, out=args.out, readme=args.readme)


def _render(results: Path, *, out: Path, readme: Path | None) -> None:
    from ablations.report import render  # matplotlib: only the commands that draw pay for it

    for path in render.render(results=results, out=out):
        print(path)
    for page in _update_pages(readme, results=results) if readme is not None else []:
        print(page)


def is_committed(results: Path, *, profile: str) -> bool:
    """Whether a run writes the committed reports: a committed profile, into the results/
    folder beside the README."""
    project = DEFAULT_README.resolve().parent / "results"
    known = PROFILES.get(profile)
    return known is not None and known.committed and results.resolve() == project


def report_run(results: Path, *, profile: str, reports: Path | None) -> Path:
    """The report `ablate run` ends with; returns its folder. A committed run (`is_committed`)
    renders reports/ and the pages' blocks; any other renders `<results>/report/` and leaves
    them alone. `reports` (--reports) chooses the folder either way."""
    committed = is_committed(results, profile=profile)
    out = reports or (DEFAULT_REPORTS if committed else results / SCRATCH_REPORT)
    _render(results, out=out, readme=DEFAULT_README if committed else None)
    if not committed:
        print(f"[ablate] report: {out / 'README.md'} (profile {profile} into {results}: the "
              f"committed {DEFAULT_REPORTS}/, {DEFAULT_README} and docs pages are left alone)",
              file=sys.stderr)  # fmt: skip
    return out


def _update_pages(readme: Path, *, results: Path) -> list[Path]:
    """Regenerate the marked figures of the README and the docs pages beside it from `results`,
    but only from the results/ folder beside them: a run into another folder never rewrites the
    project's pages. Returns the pages rewritten."""
    if results.resolve() != readme.resolve().parent / "results":
        return []
    from ablations.report import readme_blocks
    from ablations.report.readme import update

    return update(readme, readme_blocks.BLOCKS, results=results)


def _check_readme(path: Path, *, results: Path) -> None:
    from ablations.report import readme, readme_blocks

    found = readme.pages(path)
    if not found:
        raise AblationsError(
            f"--check-readme: no {path} and no {path.parent / readme.DOCS}/*.md; give --readme PATH"
        )
    stale = readme.stale_blocks(path, readme_blocks.BLOCKS, results=results)
    if stale:
        pages = "; ".join(f"{page}: blocks {', '.join(names)}" for page, names in stale.items())
        raise AblationsError(f"{pages} differ from {results}; run `ablate report`")
    print(f"{', '.join(found)}: every generated block matches {results}")


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
        print(f"ablate pack: {written[0].name} alone is over --max-mb {args.max_mb:g}; it is "
              "written anyway (the tables always go)", file=sys.stderr)  # fmt: skip
    for line in left_out:
        print(f"ablate pack: {line}", file=sys.stderr)
