"""Machinery that only pays on a GPU: several runs at once in one process, each on its own CUDA
stream (`streams`). Imported only when a command asks for it."""
