"""Training: a `TrainConfig` in, a run directory out (ablations.rundir).

`run` opens and trains a run, `trainer` is the loop, `steps` the eager training step (its CUDA
graph is ablations.gpu.graph), `schedule` the learning rate and warm-up, `evaluation` the
evaluation loop, `resume` the checkpoint that makes a killed run resume exactly, `summary` what
a run's summary says when it ends, and `records` a finished run's record."""
