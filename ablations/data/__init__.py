"""Datasets as uint8 arrays: CIFAR-10 and Fashion-MNIST from any of their usual formats
(torchvision's pickles or idx files, an ImageFolder tree, a tar archive of one) or a download,
decoded once and cached by content checksum. Public API: `load_dataset`, `ArrayDataset`,
`DataError`, `DATASETS`, `resolve_source`, `default_cache_dir`."""

from ablations.data.cache import default_cache_dir, load_dataset
from ablations.data.sources import DATASETS, ArrayDataset, DataError, resolve_source

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DataError",
    "default_cache_dir",
    "load_dataset",
    "resolve_source",
]
