"""`ablate`: thin subcommands over the library (parse -> call -> print).

Errors a user can fix print one line naming the fix and exit 2; an interrupt exits 130 and keeps
everything already saved (runners write each result as it completes).

The parser is in parser.py; the handlers are in report_commands.py (registry and results) and
train_commands.py (training and measuring); options.py holds what both read.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ablations.cli.parser import build_parser
from ablations.registry import AblationsError

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(words)
        code = args.func(args)
    except AblationsError as err:
        print(f"ablate: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ablate: interrupted; finished results are saved, rerun to resume", file=sys.stderr)
        return 130
    return code or 0
