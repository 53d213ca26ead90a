"""Reports: pure figure functions (DataFrame -> Figure) and the Markdown that shows them."""

import matplotlib

matplotlib.use("Agg")  # reports are files; never open a window, work on machines with no display
