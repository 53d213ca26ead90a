"""Dataset sources and the decoded-array cache, on tiny datasets written in every format (no
dataset needed); the real CIFAR-10 / Fashion-MNIST checks run when ABLATE_DATA /
ABLATE_DATA_FASHION_MNIST point at copies (CI sets ABLATE_DATA)."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import time
import warnings
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
from PIL import Image
from tiny_datasets import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    Tiny,
    idx_bytes,
    write_cifar_batches,
    write_idx,
    write_image,
    write_imagefolder,
    write_mixed_imagefolder,
    write_tar,
)

from ablations.data import (
    DATASETS,
    DataError,
    default_cache_dir,
    load_dataset,
    resolve_source,
    sources,
)
from ablations.data import cache as data_cache

# Read before the autouse fixture below clears them for every test.
REAL_CIFAR10 = os.environ.get("ABLATE_DATA_CIFAR10") or os.environ.get("ABLATE_DATA")
REAL_FASHION_MNIST = os.environ.get("ABLATE_DATA_FASHION_MNIST")
REAL_CACHE = os.environ.get("ABLATE_CACHE")
DATA_VARS = (
    "ABLATE_DATA", "ABLATE_DATA_CIFAR10", "ABLATE_DATA_FASHION_MNIST", "ABLATE_DATA_IMAGEFOLDER",
)  # fmt: skip


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """No configured data, and a private cache: nothing is written to the home folder."""
    for var in DATA_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


class Called(Exception):
    pass


def forbid(*args, **kwargs):
    raise Called("this must not run")


def assert_holds(ds, tiny: Tiny) -> None:
    assert ds.x_train.dtype == np.uint8 and ds.x_test.dtype == np.uint8
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train, tiny.x_train)
    np.testing.assert_array_equal(ds.y_train, tiny.y_train)
    np.testing.assert_array_equal(ds.x_test, tiny.x_test)
    np.testing.assert_array_equal(ds.y_test, tiny.y_test)
    assert ds.classes == tiny.classes


def data_error(name: str, data: object = None, **kwargs) -> str:
    """The DataError message of loading `name` from `data`; it must be one line."""
    with pytest.raises(DataError) as err:
        load_dataset(name, data=data, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


def age(folder: Path, *, seconds: float = 3600) -> None:
    """Set every file's mtime into the past, as for a dataset copied long ago."""
    past = time.time() - seconds
    for path in folder.rglob("*"):
        os.utime(path, (past, past))


# --- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["folder", "parent", "tar.gz"])
def test_cifar_pickles(tmp_path, layout):
    tiny = write_cifar_batches(tmp_path / "src")
    if layout == "tar.gz":  # the original cifar-10-python.tar.gz: the folder inside an archive
        path = write_tar(tmp_path / "src", tmp_path / "cifar-10-python.tar.gz")
    else:
        path = tmp_path / "src" / ("cifar-10-batches-py" if layout == "folder" else "")
    ds = load_dataset("cifar10", data=path)
    assert_holds(ds, tiny)
    assert ds.source_format == "cifar-pickle"
    assert ds.source == str(path)
    assert len(ds.checksum) == 64


def test_cifar_folder_and_its_parent_have_one_checksum(tmp_path):
    write_cifar_batches(tmp_path)
    folder = load_dataset("cifar10", data=tmp_path / "cifar-10-batches-py")
    parent = load_dataset("cifar10", data=tmp_path)
    assert folder.checksum == parent.checksum


@pytest.mark.parametrize(
    ("layout", "source_format"),
    [
        ("folder", "imagefolder"),
        ("tree.tar.gz", "imagefolder-tar"),
        ("top/tree.tar.gz", "imagefolder-tar"),  # the tree under one top folder
        ("tree.tgz", "imagefolder-tar"),
        ("tree.tar", "imagefolder-tar"),
    ],
)
def test_imagefolder_png_round_trips_exactly(tmp_path, layout, source_format):
    tree = tmp_path / "tree"
    tiny = write_imagefolder(tree, ext="png", classes=("dog", "cat", "bird"))
    # Files that are not images, or hidden, are ignored (ImageFolder's rule, plus macOS debris).
    (tree / "README.txt").write_text("about")
    (tree / "train" / "cat" / "notes.txt").write_text("not an image")
    (tree / "train" / "cat" / ".DS_Store").write_bytes(b"\0")
    (tree / "train" / ".hidden").mkdir()
    path = tree
    if layout != "folder":
        top = "cifar10" if layout.startswith("top/") else None
        path = write_tar(tree, tmp_path / Path(layout).name, top=top)
    ds = load_dataset("cifar10", data=path)
    assert_holds(ds, tiny)
    assert ds.classes == ("bird", "cat", "dog")  # sorted folder names give the labels
    assert ds.x_train.shape == (9, 32, 32, 3)
    assert ds.source_format == source_format


@pytest.mark.parametrize("archived", [False, True])
def test_imagefolder_jpeg_decodes_close(tmp_path, archived):
    tiny = write_imagefolder(tmp_path / "tree", ext="jpg")
    path = write_tar(tmp_path / "tree", tmp_path / "t.tar.gz") if archived else tmp_path / "tree"
    ds = load_dataset("cifar10", data=path)
    assert ds.x_train.shape == tiny.x_train.shape and ds.x_test.shape == tiny.x_test.shape
    np.testing.assert_array_equal(ds.y_train, tiny.y_train)
    np.testing.assert_array_equal(ds.y_test, tiny.y_test)
    error = np.abs(ds.x_train.astype(int) - tiny.x_train)
    assert error.mean() < 3 and error.max() < 24  # JPEG is lossy, not wrong


def test_imagefolder_for_fashion_mnist_is_grayscale(tmp_path):
    tiny = write_imagefolder(tmp_path, mode="L", height=28, width=28)
    # An RGB image in the tree is converted too (to "L"), not rejected.
    rgb = np.repeat(tiny.x_test[0], 3, axis=-1)
    write_image(tmp_path / "test" / "cat" / "0000.png", rgb)
    ds = load_dataset("fashion-mnist", data=tmp_path)
    assert_holds(ds, tiny)
    assert ds.x_train.shape[1:] == (28, 28, 1)


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
@pytest.mark.parametrize("layout", ["folder", "FashionMNIST/raw", "holder of FashionMNIST/raw"])
def test_fashion_mnist_idx(tmp_path, gz, layout):
    if layout == "folder":
        tiny = write_idx(tmp_path / "fmnist", gz=gz)
        path = tmp_path / "fmnist"
    else:
        tiny = write_idx(tmp_path / "FashionMNIST" / "raw", gz=gz)
        path = tmp_path / ("FashionMNIST/raw" if layout == "FashionMNIST/raw" else "")
    ds = load_dataset("fashion-mnist", data=path)
    assert_holds(ds, tiny)
    assert ds.classes == FASHION_MNIST_CLASSES
    assert ds.source_format == "idx"


def test_describe_is_a_flat_record(tmp_path):
    write_imagefolder(tmp_path, n_train=2, n_test=1)
    ds = load_dataset("cifar10", data=tmp_path)
    assert ds.describe() == {
        "name": "cifar10",
        "source": tmp_path.name,  # the name, never the machine's path
        "source_format": "imagefolder",
        "checksum": ds.checksum,
        "n_train": 4,
        "n_test": 2,
        "height": 32,
        "width": 32,
        "channels": 3,
        "resize": None,
        "crop": None,
    }
    assert DATASETS == ("cifar10", "fashion-mnist", "imagefolder")


# --- checksums and the cache -------------------------------------------------------------------


def test_checksum_follows_content_not_location(tmp_path):
    for folder in ("a", "b"):
        write_imagefolder(tmp_path / folder)  # the same images, byte for byte
    a = load_dataset("cifar10", data=tmp_path / "a").checksum
    assert load_dataset("cifar10", data=tmp_path / "b").checksum == a
    assert load_dataset("cifar10", data=tmp_path / "a").checksum == a
    write_image(tmp_path / "b" / "train" / "cat" / "0000.png", np.zeros((32, 32, 3), np.uint8))
    assert load_dataset("cifar10", data=tmp_path / "b").checksum != a


def test_checksum_of_an_archive_is_its_sha256(tmp_path):
    write_imagefolder(tmp_path / "tree")
    archive = write_tar(tmp_path / "tree", tmp_path / "tree.tar.gz")
    ds = load_dataset("cifar10", data=archive)
    assert ds.checksum == hashlib.sha256(archive.read_bytes()).hexdigest()


def test_checksum_memo_skips_rereading_unchanged_files(tmp_path, monkeypatch, cache_dir):
    tree = tmp_path / "tree"
    write_imagefolder(tree)
    age(tree)
    first = load_dataset("cifar10", data=tree).checksum
    assert first in (cache_dir / "checksums.json").read_text()
    monkeypatch.setattr(data_cache, "_content_checksum", forbid)
    assert load_dataset("cifar10", data=tree).checksum == first
    os.utime(tree / "test" / "dog" / "0001.png")  # touched: the stat key changes, so re-read
    with pytest.raises(Called):
        load_dataset("cifar10", data=tree)


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch, cache_dir):
    tiny = write_imagefolder(tmp_path)
    first = load_dataset("cifar10", data=tmp_path)
    assert (cache_dir / "arrays" / f"cifar10-{first.checksum[:16]}.npz").is_file()
    monkeypatch.setattr(sources, "read_source", forbid)  # the decoder must not run again
    second = load_dataset("cifar10", data=tmp_path)
    assert_holds(second, tiny)
    assert (second.checksum, second.source_format) == (first.checksum, first.source_format)
    # The same files read as the other dataset are decoded anew (grayscale), not confused.
    with pytest.raises(Called):
        load_dataset("fashion-mnist", data=tmp_path)


def test_explicit_cache_dir_is_used(tmp_path):
    write_imagefolder(tmp_path / "tree")
    ds = load_dataset("cifar10", data=tmp_path / "tree", cache_dir=tmp_path / "mine")
    assert (tmp_path / "mine" / "arrays" / f"cifar10-{ds.checksum[:16]}.npz").is_file()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "foreign", "wrong dtype"])
def test_corrupt_cache_file_is_discarded_and_rebuilt(tmp_path, monkeypatch, cache_dir, damage):
    tiny = write_imagefolder(tmp_path / "tree")
    ds = load_dataset("cifar10", data=tmp_path / "tree")
    npz = cache_dir / "arrays" / f"cifar10-{ds.checksum[:16]}.npz"
    if damage == "truncated":
        npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    elif damage == "garbage":
        npz.write_bytes(b"not a zip file")
    elif damage == "foreign":
        np.savez(npz, x_train=np.zeros(3))
    else:
        np.savez(npz, x_train=ds.x_train.astype(np.float32), y_train=ds.y_train,
                 x_test=ds.x_test, y_test=ds.y_test, classes=np.array(ds.classes),
                 version=np.array(data_cache.CACHE_VERSION))  # fmt: skip
    with pytest.warns(UserWarning, match="discarding corrupt cache file .*decoding .* again"):
        rebuilt = load_dataset("cifar10", data=tmp_path / "tree")
    assert_holds(rebuilt, tiny)
    monkeypatch.setattr(sources, "read_source", forbid)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_holds(load_dataset("cifar10", data=tmp_path / "tree"), tiny)


def test_a_failed_decode_caches_nothing(tmp_path, cache_dir):
    write_imagefolder(tmp_path / "tree")
    (tmp_path / "tree" / "train" / "cat" / "0001.png").write_bytes(b"not a png")
    data_error("cifar10", tmp_path / "tree")
    assert not list(cache_dir.glob("arrays/*"))


# --- where the data comes from -----------------------------------------------------------------


def test_resolution_order(tmp_path, monkeypatch):
    arg, specific, general = (tmp_path / n for n in ("arg", "specific", "general"))
    assert resolve_source("cifar10") is None
    monkeypatch.setenv("ABLATE_DATA", str(general))
    assert resolve_source("cifar10") == general
    monkeypatch.setenv("ABLATE_DATA_CIFAR10", str(specific))
    assert resolve_source("cifar10") == specific
    assert resolve_source("cifar10", arg) == arg
    assert resolve_source("cifar10", str(arg)) == arg
    assert resolve_source("fashion-mnist") is None  # ABLATE_DATA is CIFAR-10's alone
    monkeypatch.setenv("ABLATE_DATA_FASHION_MNIST", str(general))
    assert resolve_source("fashion-mnist") == general


def test_environment_variable_is_loaded(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "general", classes=("a", "b"))
    write_imagefolder(tmp_path / "specific", classes=("c", "d"))
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "general"))
    assert load_dataset("cifar10").classes == ("a", "b")
    monkeypatch.setenv("ABLATE_DATA_CIFAR10", str(tmp_path / "specific"))
    assert load_dataset("cifar10").classes == ("c", "d")
    assert load_dataset("cifar10", data=tmp_path / "general").classes == ("a", "b")


def test_relative_paths_are_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("ABLATE_DATA", "../datasets/data.tar.gz")
    assert resolve_source("cifar10") == tmp_path / "datasets" / "data.tar.gz"


def test_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "c"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ABLATE_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "resnet-ablations"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "resnet-ablations"


def test_download_goes_to_the_cache_and_happens_once(tmp_path, monkeypatch, cache_dir):
    torchvision_datasets = pytest.importorskip("torchvision.datasets")
    calls = []

    def fake_cifar10(root, train, download):
        calls.append(root)
        write_cifar_batches(Path(root))

    monkeypatch.setattr(torchvision_datasets, "CIFAR10", fake_cifar10)
    ds = load_dataset("cifar10")
    assert calls == [str(cache_dir / "downloads")]
    assert ds.source == f"download:{cache_dir / 'downloads'}"
    assert ds.describe()["source"] == "torchvision download"
    assert ds.source_format == "cifar-pickle" and ds.classes == CIFAR10_CLASSES[:2]
    assert load_dataset("cifar10").checksum == ds.checksum
    assert len(calls) == 1  # already there: no second download


def test_downloaded_fashion_mnist_is_read_from_torchvisions_raw_folder(monkeypatch, cache_dir):
    torchvision_datasets = pytest.importorskip("torchvision.datasets")
    tiny = write_idx(cache_dir / "downloads" / "FashionMNIST" / "raw", gz=True)
    write_idx(cache_dir / "downloads" / "FashionMNIST" / "raw", gz=False)  # torchvision keeps both
    monkeypatch.setattr(torchvision_datasets, "FashionMNIST", forbid)
    ds = load_dataset("fashion-mnist")
    assert_holds(ds, tiny)
    assert ds.source == f"download:{cache_dir / 'downloads'}"


@pytest.mark.parametrize(
    ("name", "var"), [("cifar10", "ABLATE_DATA"), ("fashion-mnist", "ABLATE_DATA_FASHION_MNIST")]
)
def test_offline_download_says_what_to_do(monkeypatch, name, var):
    torchvision_datasets = pytest.importorskip("torchvision.datasets")

    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision_datasets, "CIFAR10", offline)
    monkeypatch.setattr(torchvision_datasets, "FashionMNIST", offline)
    message = data_error(name)
    assert message.startswith(
        f"could not download {name} (URLError; offline?); point --data or {var} at a local copy: "
    )
    assert "ImageFolder tree with train/ and test/, or a .tar.gz of one" in message


def test_no_download_when_it_is_off(monkeypatch):
    torchvision_datasets = pytest.importorskip("torchvision.datasets")
    monkeypatch.setattr(torchvision_datasets, "CIFAR10", forbid)
    message = data_error("cifar10", download=False)
    assert message.startswith("no cifar10 data configured and downloading is off; point --data")


# --- errors: one line, what is wrong and how to fix it -----------------------------------------


def test_unknown_dataset():
    assert data_error("mnist") == (
        "unknown dataset 'mnist'; choose from cifar10, fashion-mnist, imagefolder"
    )


def test_missing_path(tmp_path, monkeypatch):
    message = data_error("cifar10", tmp_path / "nope")
    assert message.startswith(
        f"cifar10 data not found: {tmp_path / 'nope'} does not exist (from --data); "
        "point --data at a cifar-10-batches-py folder"
    )
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "gone.tar.gz"))
    assert "(from ABLATE_DATA); point ABLATE_DATA at" in data_error("cifar10")


@pytest.mark.parametrize(
    ("name", "write", "found"),
    [
        ("cifar10", lambda p: write_idx(p), "Fashion-MNIST idx files"),
        ("fashion-mnist", lambda p: write_cifar_batches(p), "CIFAR-10 pickled batches"),
    ],
)
def test_wrong_format_for_the_dataset(tmp_path, name, write, found):
    write(tmp_path)
    message = data_error(name, tmp_path)
    assert f"holds {found}, which is not {name} data; {name} accepts " in message


@pytest.mark.parametrize("kind", ["empty folder", "text file", "tar of text"])
def test_unrecognised_source(tmp_path, kind):
    path = tmp_path / "src"
    if kind == "empty folder":
        path.mkdir()
    elif kind == "text file":
        path.write_text("hello")
    else:
        (tmp_path / "notes").mkdir()
        (tmp_path / "notes" / "a.txt").write_text("hello")
        path = write_tar(tmp_path / "notes", tmp_path / "notes.tar.gz")
    assert "is no cifar10 data this reader knows" in data_error("cifar10", path)


def test_test_classes_must_match_train(tmp_path):
    write_imagefolder(tmp_path, classes=("cat", "dog"))
    (tmp_path / "test" / "dog").rename(tmp_path / "test" / "dogs")
    assert data_error("cifar10", tmp_path) == (
        f"{tmp_path}: test/ classes differ from train/ (missing in test/: dog; only in test/: "
        "dogs); give both the same class folders"
    )


def test_archive_test_classes_must_match_train(tmp_path):
    write_imagefolder(tmp_path / "tree", classes=("cat", "dog"))
    shutil.rmtree(tmp_path / "tree" / "test" / "dog")
    archive = write_tar(tmp_path / "tree", tmp_path / "tree.tar.gz", top="data")
    assert "(missing in test/: dog; only in test/: none)" in data_error("cifar10", archive)


def test_tree_needs_test_folder_and_images(tmp_path):
    write_imagefolder(tmp_path)
    shutil.rmtree(tmp_path / "test" / "cat")
    (tmp_path / "test" / "cat").mkdir()
    assert "test/cat/ has no images; add some or remove it" in data_error("cifar10", tmp_path)
    shutil.rmtree(tmp_path / "test")
    assert "has no test/<class>/ folders" in data_error("cifar10", tmp_path)


@pytest.mark.parametrize("archived", [False, True])
def test_images_must_have_one_size(tmp_path, archived):
    write_imagefolder(tmp_path / "tree", height=6, width=8)
    write_image(tmp_path / "tree" / "test" / "dog" / "0001.png", np.zeros((7, 8, 3), np.uint8))
    path = write_tar(tmp_path / "tree", tmp_path / "t.tar") if archived else tmp_path / "tree"
    assert data_error("cifar10", path) == (
        f"{path}: test/dog/0001.png is 8x7 but train/cat/0000.png is 8x6; "
        "all images must have one size (resize or remove it)"
    )


def test_undecodable_image_is_named(tmp_path):
    write_imagefolder(tmp_path)
    (tmp_path / "train" / "dog" / "0002.png").write_bytes(b"not a png")
    assert "cannot decode train/dog/0002.png as an image" in data_error("cifar10", tmp_path)


def test_incomplete_copies_name_the_missing_files(tmp_path):
    write_cifar_batches(tmp_path / "c")
    (tmp_path / "c" / "cifar-10-batches-py" / "data_batch_3").unlink()
    assert "lacks data_batch_3; a cifar-10-batches-py folder holds" in data_error(
        "cifar10", tmp_path / "c"
    )
    write_idx(tmp_path / "f")
    (tmp_path / "f" / "t10k-labels-idx1-ubyte.gz").unlink()
    assert "lacks t10k-labels-idx1-ubyte[.gz]" in data_error("fashion-mnist", tmp_path / "f")


def test_damaged_idx_files(tmp_path):
    write_idx(tmp_path, gz=False)
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    assert "holds 4694 values but its header says (6, 28, 28)" in data_error(
        "fashion-mnist", tmp_path
    )
    images.write_bytes(idx_bytes(np.zeros((6, 28), np.uint8)))  # 2-d where 3-d belongs
    assert "is not an idx file of 3-d uint8 data" in data_error("fashion-mnist", tmp_path)
    images.write_bytes(idx_bytes(np.zeros((5, 28, 28), np.uint8)))
    assert "5 train images but 6 labels" in data_error("fashion-mnist", tmp_path)


def test_cifar_pickle_cannot_run_code(tmp_path):
    write_cifar_batches(tmp_path)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    assert "cannot unpickle data_batch_1 (UnpicklingError)" in data_error("cifar10", tmp_path)
    assert not marker.exists()


# --- "imagefolder", and resize / crop at decode time ----------------------------------------------


def torchvision_pixels(paths, *, resize, crop, mode="RGB") -> np.ndarray:
    """The images at `paths` through torchvision's Resize and CenterCrop, as one array."""
    transforms = pytest.importorskip("torchvision.transforms")
    steps = [transforms.Resize(resize)] if resize else []
    steps += [transforms.CenterCrop(crop)] if crop else []
    pipeline = transforms.Compose(steps)
    out = []
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(pipeline(image.convert(mode)), dtype=np.uint8)
        out.append(pixels.reshape(*pixels.shape[:2], -1))
    return np.stack(out)


@pytest.mark.parametrize("archived", [False, True])
def test_imagefolder_resize_and_crop_match_torchvision(tmp_path, archived):
    # Sizes cover: landscape and portrait, a short side already at `resize` (left untouched),
    # and odd margins where the crop offset rounds.
    files = write_mixed_imagefolder(tmp_path / "tree")
    path = write_tar(tmp_path / "tree", tmp_path / "t.tar.gz") if archived else tmp_path / "tree"
    ds = load_dataset("imagefolder", data=path, resize=12, crop=9)
    assert ds.x_train.shape == (6, 9, 9, 3) and ds.x_test.shape == (4, 9, 9, 3)
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        paths, labels = zip(*files[split], strict=True)
        np.testing.assert_array_equal(x, torchvision_pixels(paths, resize=12, crop=9))
        np.testing.assert_array_equal(y, labels)
    assert ds.classes == ("cat", "dog")
    assert ds.source_format == ("imagefolder-tar" if archived else "imagefolder")
    assert ds.describe()["resize"] == 12 and ds.describe()["crop"] == 9


@pytest.mark.parametrize(("resize", "crop", "side"), [(None, 11, 11), (10, None, 10)])
def test_resize_or_crop_alone(tmp_path, resize, crop, side):
    # One aspect ratio (3:2), two sizes: resizing alone is enough to give them one size.
    files = write_mixed_imagefolder(tmp_path, sizes=((12, 18), (24, 36)))
    ds = load_dataset("imagefolder", data=tmp_path, resize=resize, crop=crop)
    assert ds.x_train.shape[1:] == ((side, side, 3) if crop else (side, side * 3 // 2, 3))
    paths = [p for p, _ in files["train"]]
    np.testing.assert_array_equal(ds.x_train, torchvision_pixels(paths, resize=resize, crop=crop))
    assert (ds.resize, ds.crop) == (resize, crop)


def test_imagefolder_has_no_fixed_shape(tmp_path):
    tiny = write_imagefolder(tmp_path, height=20, width=30)  # neither CIFAR's nor MNIST's
    ds = load_dataset("imagefolder", data=tmp_path)
    assert_holds(ds, tiny)
    assert ds.describe()["height"] == 20 and ds.describe()["width"] == 30


def test_resize_lifts_the_shape_check_of_cifar10_and_fashion_mnist(tmp_path):
    write_imagefolder(tmp_path / "rgb", height=48, width=48)
    assert "holds 48x48x3 images" in data_error("cifar10", tmp_path / "rgb")
    assert load_dataset("cifar10", data=tmp_path / "rgb", resize=32).x_train.shape[1:] == (
        32, 32, 3,
    )  # fmt: skip
    write_idx(tmp_path / "idx")
    fashion = load_dataset("fashion-mnist", data=tmp_path / "idx", resize=14, crop=12)
    assert fashion.x_train.shape == (6, 12, 12, 1)


def test_resize_and_crop_of_array_formats_match_torchvision(tmp_path):
    tiny = write_cifar_batches(tmp_path)
    ds = load_dataset("cifar10", data=tmp_path, resize=20, crop=17)
    # The same images as PNG files, through torchvision: pickles and trees are prepared alike.
    paths = []
    for i, pixels in enumerate(tiny.x_test):
        paths.append(tmp_path / "png" / f"{i}.png")
        write_image(paths[-1], pixels)
    np.testing.assert_array_equal(ds.x_test, torchvision_pixels(paths, resize=20, crop=17))
    assert ds.x_train.shape == (20, 17, 17, 3)


def test_cache_is_keyed_by_resize_and_crop(tmp_path, monkeypatch, cache_dir):
    write_mixed_imagefolder(tmp_path)
    first = load_dataset("imagefolder", data=tmp_path, resize=12, crop=9)
    other = load_dataset("imagefolder", data=tmp_path, resize=12, crop=6)
    assert first.checksum == other.checksum  # the same source ...
    assert first.x_train.shape[1:3] == (9, 9) and other.x_train.shape[1:3] == (6, 6)  # ... apart
    stem = f"imagefolder-{first.checksum[:16]}"
    assert sorted(p.name for p in (cache_dir / "arrays").iterdir()) == [
        f"{stem}-resize12-crop6.npz", f"{stem}-resize12-crop9.npz",
    ]  # fmt: skip
    monkeypatch.setattr(sources, "read_source", forbid)
    again = load_dataset("imagefolder", data=tmp_path, resize=12, crop=9)
    np.testing.assert_array_equal(again.x_train, first.x_train)
    assert (again.resize, again.crop) == (12, 9)
    with pytest.raises(Called):  # a transform not seen before is decoded
        load_dataset("imagefolder", data=tmp_path, resize=12)


def test_crop_larger_than_the_image(tmp_path):
    write_mixed_imagefolder(tmp_path)
    assert data_error("imagefolder", tmp_path, resize=12, crop=13) == (
        "crop 13 is larger than resize 12 (the shorter side after resizing); "
        "pass a crop of at most 12 or a larger resize"
    )
    assert data_error("imagefolder", tmp_path, crop=13) == (
        f"{tmp_path}: train/cat/0002.png is 15x12, smaller than the 13x13 crop; "
        "pass a crop of at most 12 (or resize first)"
    )
    write_cifar_batches(tmp_path / "c")
    assert "train image 0 is 32x32, smaller than the 33x33 crop" in data_error(
        "cifar10", tmp_path / "c", crop=33
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"resize": 0}, "resize must be at least 1 pixel, got 0"),
        ({"crop": -3}, "crop must be at least 1 pixel, got -3"),
        ({"resize": 2.5}, "resize must be a whole number of pixels, got 2.5"),
        ({"crop": True}, "crop must be a whole number of pixels, got True"),
    ],
)
def test_bad_resize_or_crop(tmp_path, options, message):
    assert data_error("imagefolder", tmp_path / "never-read", **options) == message


def test_resize_without_crop_needs_one_aspect_ratio(tmp_path):
    write_mixed_imagefolder(tmp_path)
    # 17x31 -> 12x21: the longer side is truncated (12 * 31 / 17 = 21.9), as torchvision does.
    assert data_error("imagefolder", tmp_path, resize=12) == (
        f"{tmp_path}: train/cat/0001.png is 12x21 after resizing but train/cat/0000.png is 18x12;"
        " images of different aspect ratios need a crop as well to share one size"
    )


def test_imagefolder_is_never_downloaded(monkeypatch):
    torchvision_datasets = pytest.importorskip("torchvision.datasets")
    monkeypatch.setattr(torchvision_datasets, "ImageFolder", forbid)
    expected = (
        "no imagefolder data configured (it is never downloaded); pass --data (or set "
        "ABLATE_DATA_IMAGEFOLDER) to an ImageFolder tree with train/ and test/, or a .tar.gz of one"
    )
    assert data_error("imagefolder") == expected
    assert data_error("imagefolder", download=False) == expected


def test_imagefolder_environment_variable(tmp_path, monkeypatch):
    write_imagefolder(tmp_path / "tree", classes=("x", "y"))
    monkeypatch.setenv("ABLATE_DATA", str(tmp_path / "elsewhere"))  # CIFAR-10's, not this one's
    monkeypatch.setenv("ABLATE_DATA_IMAGEFOLDER", str(tmp_path / "tree"))
    assert load_dataset("imagefolder").classes == ("x", "y")


def test_imagefolder_refuses_other_formats(tmp_path):
    write_cifar_batches(tmp_path)
    assert data_error("imagefolder", tmp_path).endswith(
        "holds CIFAR-10 pickled batches, which is not imagefolder data; imagefolder accepts "
        "an ImageFolder tree with train/ and test/, or a .tar.gz of one"
    )


# --- the real datasets -------------------------------------------------------------------------


def _real_cache(tmp_path: Path) -> Path:
    # A configured cache makes reruns fast; otherwise decode once into this test's folder.
    return Path(REAL_CACHE) if REAL_CACHE else tmp_path / "real-cache"


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CIFAR10, reason="set ABLATE_DATA to a copy of CIFAR-10")
def test_real_cifar10(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_DATA", str(REAL_CIFAR10))
    ds = load_dataset("cifar10", cache_dir=_real_cache(tmp_path))
    assert ds.x_train.shape == (50_000, 32, 32, 3) and ds.x_test.shape == (10_000, 32, 32, 3)
    assert np.bincount(ds.y_train).tolist() == [5_000] * 10
    assert np.bincount(ds.y_test).tolist() == [1_000] * 10
    assert ds.classes == CIFAR10_CLASSES
    # The JPEG copy's means (the original pickles' differ by 0.0001; see the datasets README).
    means = ds.x_train.mean(axis=(0, 1, 2)) / 255
    np.testing.assert_allclose(means, [0.4913, 0.4821, 0.4465], atol=0.001)

    monkeypatch.setattr(sources, "read_source", forbid)
    start = time.perf_counter()
    again = load_dataset("cifar10", cache_dir=_real_cache(tmp_path))
    assert time.perf_counter() - start < 2.0
    assert again.checksum == ds.checksum
    np.testing.assert_array_equal(again.x_test, ds.x_test)


@pytest.mark.skipif(not REAL_FASHION_MNIST, reason="set ABLATE_DATA_FASHION_MNIST to a copy")
def test_real_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_DATA_FASHION_MNIST", str(REAL_FASHION_MNIST))
    ds = load_dataset("fashion-mnist", cache_dir=_real_cache(tmp_path))
    assert ds.x_train.shape == (60_000, 28, 28, 1) and ds.x_test.shape == (10_000, 28, 28, 1)
    assert ds.classes == FASHION_MNIST_CLASSES
    assert np.bincount(ds.y_train).tolist() == [6_000] * 10
    monkeypatch.setattr(sources, "read_source", forbid)
    start = time.perf_counter()
    assert load_dataset("fashion-mnist", cache_dir=_real_cache(tmp_path)).checksum == ds.checksum
    assert time.perf_counter() - start < 2.0


def test_images_of_another_dataset_are_refused(tmp_path):
    write_imagefolder(tmp_path / "tree", mode="L")  # 32x32 grey images are no Fashion-MNIST
    message = data_error("fashion-mnist", tmp_path / "tree")
    assert "holds 32x32x1 images; fashion-mnist images are 28x28x1" in message
    assert "right dataset" in message
