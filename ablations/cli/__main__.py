"""`python -m ablations.cli ...` is `ablate ...`."""

import sys

from ablations.cli import main

if __name__ == "__main__":
    sys.exit(main())
