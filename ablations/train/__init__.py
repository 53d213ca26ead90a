"""Training: a `TrainConfig` in, a run directory out (ablations.rundir); `run` is the entry."""
