"""Machinery that only pays on a GPU: the training step replayed as one CUDA graph (`graph`),
and several runs at once in one process, each on its own CUDA stream (`streams`). `graph` is
imported only when a graph step is built (ablations.train.steps.step_of_kind), `streams` only
when a command asks for it."""
