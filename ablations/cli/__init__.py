"""`ablate`: plan, train, measure and report the ResNet ablations of He et al. (2016).

Each subcommand parses its options, calls the library and prints. Errors a user can fix print
one line naming the fix and exit 2; an interrupt exits 130. Plugins load before the parser is
built, so the variants and profiles they register are its choices.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ablations import plugins
from ablations.cli.parser import Parser, build_parser
from ablations.registry import AblationsError

__all__ = ["build_parser", "main", "plugin_options"]


def plugin_options(words: Sequence[str]) -> list[str]:
    """The values of the `--plugin PATH` options before the subcommand, read before the parser
    is built (their variants and profiles are its choices)."""
    leading = Parser(prog="ablate", add_help=False)
    leading.add_argument("--plugin", action="append", default=[])
    leading.add_argument("subcommand", nargs=argparse.REMAINDER)  # stops at the first word
    return leading.parse_known_args(words)[0].plugin


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        plugins.load(plugin_options(words))
        args = build_parser().parse_args(words)
        code = args.func(args)
    except AblationsError as err:
        print(f"ablate: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ablate: interrupted; finished results are saved, rerun to resume", file=sys.stderr)
        return 130
    return code or 0
