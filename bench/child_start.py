"""Does how a throughput child starts change what it measures? The quick CPU table's inference
settings measured in children forked from the import-only server (what `ablate bench` does on a
CPU) and in spawned children (a fresh interpreter, as before), alternating, so that drift of the
machine affects both alike. One line per round and start method: images/s and peak memory
(MB, with its kind: a forked child's resident set leaves out library pages it never touched) per
variant.

    python bench/child_start.py --variants plain56,resnet56 --rounds 3
"""

from __future__ import annotations

import argparse
import multiprocessing

from ablations.measure import throughput as tp
from ablations.measure.throughput import parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="plain56,resnet56")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = [s for s in tp.grid(args.variants.split(","), device="cpu") if s.mode == "infer"]
    starts = {
        "forked": parent.start_method,
        "spawned": lambda device: multiprocessing.get_context("spawn"),
    }
    for round_ in range(args.rounds):
        for name, start in starts.items():
            parent.start_method = start
            table = tp.run(settings, show_progress=False)
            columns = (table[c] for c in ("variant", "images_per_s", "peak_mem_mb"))
            cols = list(zip(*columns, strict=True))
            rates = " ".join(f"{v} {r:,.0f}" for v, r, _ in cols)
            memory = " ".join(f"{v} {m:,.0f}" for v, _, m in cols)
            kinds = ",".join(sorted(set(table["memory_kind"])))
            print(f"round {round_} {name:7s} images/s: {rates}", flush=True)
            print(f"round {round_} {name:7s} peak MB ({kinds}): {memory}", flush=True)


if __name__ == "__main__":  # spawned children import this module again
    main()
