"""Datasets as uint8 arrays: CIFAR-10 and Fashion-MNIST from any of their usual formats
(torchvision's pickles or idx files, an ImageFolder tree, a tar archive of one) or a download,
and any ImageFolder tree as "imagefolder"; optionally resized and centre-cropped as decoded, and
cached by content checksum. Public API: `load_dataset`, `ArrayDataset`, `DataError`,
`DATASETS`, `resolve_source`, `default_cache_dir`, and `write_subset` / `make_subset` /
`parse_classes` for small ImageFolder subsets."""

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
