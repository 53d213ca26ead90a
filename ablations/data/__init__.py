"""Datasets as uint8 arrays (`load_dataset`): CIFAR-10 and Fashion-MNIST in any of their usual
formats or downloaded, any ImageFolder tree as "imagefolder"; and small ImageFolder subsets."""

from ablations.data.arrays import ArrayDataset, DataError
from ablations.data.cache import default_cache_dir, load_dataset
from ablations.data.sources import DATASETS, resolve_source
from ablations.data.subset import make_subset, parse_classes, write_subset

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "DataError",
    "default_cache_dir",
    "load_dataset",
    "make_subset",
    "parse_classes",
    "resolve_source",
    "write_subset",
]
