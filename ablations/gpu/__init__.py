"""GPU-only machinery: the training step as one CUDA graph, several runs on their own streams."""
