"""`ablate`: thin subcommands over the library (parse -> call -> print).

Errors a user can fix print one line naming the fix and exit 2; an interrupt exits 130 and keeps
everything already saved (runners write each result as it completes).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ablations import experiments, golden
from ablations.registry import REGISTRY, AblationsError, list_variants
from ablations.report import render
from ablations.results import read_table
from ablations.runners import complexity

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
    return f"# {complexity.MACS_CONVENTION}\n{shown.to_string(index=False)}"


def cmd_list(args: argparse.Namespace) -> None:
    names = select(args.patterns, args.exclude)
    stored = read_table(args.results, complexity.SCHEMA) if args.results.exists() else None
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
    if args.write:
        table = golden.write(args.path)
        print(f"{args.path}: wrote {len(table)} variants")
        return
    problems = golden.check(args.path)
    for line in problems:
        print(line)
    if problems:
        raise AblationsError(
            f"{len(problems)} differences from {args.path}; "
            "if the change is intended, run `ablate golden --write`"
        )
    print(f"{args.path}: every registered variant matches")


def cmd_report(args: argparse.Namespace) -> None:
    for path in render.render(results=args.results, out=args.out):
        print(path)


def cmd_run(args: argparse.Namespace) -> None:
    chosen = experiments.parse(args.experiments)
    for name in chosen:
        print(f"== {name}", file=sys.stderr)
        experiments.EXPERIMENTS[name](results=args.results)
    cmd_report(argparse.Namespace(results=args.results, out=args.reports))


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("patterns", nargs="*", metavar="GLOB", help="variant names or globs")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="drop matches (repeatable)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ablate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered variants with params and MACs")
    _add_selection(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument(
        "--results", type=Path, default=Path("results") / complexity.COMPLEXITY_FILE,
        help="reuse up-to-date counts from this table when it exists (default: %(default)s)",
    )  # fmt: skip
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("complexity", help="measure params and MACs into a results table")
    _add_selection(p)
    p.add_argument("--out", type=Path, default=Path("results") / complexity.COMPLEXITY_FILE)
    p.add_argument("--rerun", action="store_true", help="recompute rows that are up to date")
    p.set_defaults(func=cmd_complexity)

    p = sub.add_parser("golden", help="check (or --write) the golden complexity file")
    p.add_argument("--write", action="store_true", help="regenerate the file from the registry")
    p.add_argument("--path", type=Path, default=golden.DEFAULT_PATH)
    p.set_defaults(func=cmd_golden)

    p = sub.add_parser("report", help="render reports/ from results/")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--out", type=Path, default=Path("reports"))
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("run", help="run the missing runs of experiments, then render reports/")
    p.add_argument(
        "--experiments", default=",".join(experiments.DEFAULT),
        help=f"comma-separated, from: {', '.join(experiments.EXPERIMENTS)} (default: %(default)s)",
    )  # fmt: skip
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--reports", type=Path, default=Path("reports"))
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except AblationsError as err:
        print(f"ablate: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ablate: interrupted; finished results are saved, rerun to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
