"""`python -m ablations ...` is `ablate ...`; so is `torchrun --nproc-per-node G -m ablations
train VARIANT ...` (one run across G processes, see ablations.cluster.distributed)."""

import sys

from ablations.cli import main

if __name__ == "__main__":
    sys.exit(main())
