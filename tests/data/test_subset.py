"""Small ImageFolder subsets (`ablations.data.subset`), written from tiny datasets and read back
by `load_dataset`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from tiny_datasets import CIFAR10_CLASSES, write_cifar_batches, write_idx

from ablations.data import DataError, load_dataset, make_subset, parse_classes, write_subset


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def cifar(tmp_path):
    """A tiny CIFAR-10 of four classes: 10 training and 5 test images each."""
    write_cifar_batches(tmp_path / "src", classes=CIFAR10_CLASSES[:4], per_class=10,
                        test_per_class=5)  # fmt: skip
    return load_dataset("cifar10", data=tmp_path / "src")


def subset_error(dataset, out, **options) -> str:
    settings = {"classes": ["cat"], "train_per_class": 2, "test_per_class": 1, **options}
    with pytest.raises(DataError) as err:
        write_subset(dataset, out=out, **settings)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_round_trip_gives_exactly_the_chosen_images(cifar, tmp_path):
    out = write_subset(cifar, out=tmp_path / "sub", classes=["cat", "airplane", "bird"],
                       train_per_class=3, test_per_class=2, seed=7)  # fmt: skip
    assert out == tmp_path / "sub"
    back = load_dataset("imagefolder", data=out)
    assert back.classes == ("airplane", "bird", "cat")  # sorted folder names, as ImageFolder
    indices = json.loads((out / "subset.json").read_text())["indices"]
    for split, x, y in (("train", back.x_train, back.y_train), ("test", back.x_test, back.y_test)):
        source_x, source_y = getattr(cifar, f"x_{split}"), getattr(cifar, f"y_{split}")
        chosen = np.concatenate([indices[split][c] for c in back.classes])
        assert len(set(chosen.tolist())) == len(chosen)  # drawn without replacement
        np.testing.assert_array_equal(x, source_x[chosen])  # PNG: lossless
        # Labels follow the subset's own (sorted) class list, and name the source's class.
        per_class = 3 if split == "train" else 2
        np.testing.assert_array_equal(y, np.repeat(np.arange(3), per_class))
        assert [back.classes[v] for v in y] == [cifar.classes[v] for v in source_y[chosen]]


def test_the_draw_is_random_but_fixed_by_the_seed(cifar, tmp_path):
    def drawn(out, classes, seed):
        write_subset(cifar, out=tmp_path / out, classes=classes, train_per_class=4,
                     test_per_class=2, seed=seed)  # fmt: skip
        return json.loads((tmp_path / out / "subset.json").read_text())["indices"]["train"]

    first = drawn("a", ["cat", "bird"], seed=0)
    assert drawn("b", ["cat", "bird"], seed=0) == first
    assert drawn("c", ["cat", "bird"], seed=1) != first
    # A class's images do not depend on the other classes asked for.
    assert drawn("d", ["cat"], seed=0)["cat"] == first["cat"]
    first_cats = np.flatnonzero(cifar.y_train == cifar.classes.index("cat"))[:4]
    assert first["cat"] != first_cats.tolist()  # not just the first images of the class


def test_class_names_become_folder_names(tmp_path):
    write_idx(tmp_path / "idx", n_train=200, n_test=100)
    fashion = load_dataset("fashion-mnist", data=tmp_path / "idx")
    out = write_subset(fashion, out=tmp_path / "sub", classes=["T-shirt/top", "Bag"],
                       train_per_class=2, test_per_class=1)  # fmt: skip
    assert sorted(p.name for p in (out / "train").iterdir()) == ["Bag", "T-shirt-top"]
    back = load_dataset("fashion-mnist", data=out)  # grey images read back as they were
    assert back.classes == ("Bag", "T-shirt-top") and back.x_train.shape == (4, 28, 28, 1)
    manifest = json.loads((out / "subset.json").read_text())
    assert manifest["classes"] == {"T-shirt/top": "T-shirt-top", "Bag": "Bag"}
    chosen = [*manifest["indices"]["train"]["Bag"], *manifest["indices"]["train"]["T-shirt-top"]]
    np.testing.assert_array_equal(back.x_train, fashion.x_train[chosen])


def test_files_are_pngs_numbered_in_reading_order(cifar, tmp_path):
    out = write_subset(cifar, out=tmp_path / "sub", classes=["cat"], train_per_class=10,
                       test_per_class=1)  # fmt: skip
    names = sorted(p.name for p in (out / "train" / "cat").iterdir())
    assert names == [f"{i:04d}.png" for i in range(10)]
    with Image.open(out / "train" / "cat" / "0000.png") as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (32, 32))


def test_existing_out_is_refused(cifar, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.txt").write_text("keep me")
    assert subset_error(cifar, tmp_path / "sub") == (
        f"{tmp_path / 'sub'} already exists; choose another --out or remove it"
    )
    assert (tmp_path / "sub" / "mine.txt").read_text() == "keep me"


def test_unknown_class_lists_the_choices(cifar, tmp_path):
    assert subset_error(cifar, tmp_path / "sub", classes=["cat", "dog"]) == (
        "unknown class 'dog' in cifar10; choose from airplane, automobile, bird, cat"
    )
    assert "asked twice" in subset_error(cifar, tmp_path / "sub", classes=["cat", "cat"])
    assert not list(tmp_path.glob("*sub*"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"train_per_class": 11}, "cifar10 has 10 train images of 'cat', fewer than the 11 asked; "
         "ask for at most 10 per class"),
        ({"test_per_class": 6}, "cifar10 has 5 test images of 'cat', fewer than the 6 asked; "
         "ask for at most 5 per class"),
        ({"test_per_class": 0}, "test images per class must be at least 1, got 0"),
    ],
)  # fmt: skip
def test_too_few_images_are_refused(cifar, tmp_path, options, message):
    assert subset_error(cifar, tmp_path / "sub", **options) == message
    assert not list(tmp_path.glob("*sub*"))  # nothing written, not even a temporary folder


def test_an_interrupted_write_leaves_nothing(cifar, tmp_path, monkeypatch):
    saved = []
    real_save = Image.Image.save

    def save_then_stop(self, path, *args, **kwargs):
        if len(saved) == 5:
            raise KeyboardInterrupt
        saved.append(path)
        return real_save(self, path, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        write_subset(cifar, out=tmp_path / "sub", classes=["cat", "bird"], train_per_class=3,
                     test_per_class=1)  # fmt: skip
    assert len(saved) == 5
    assert not list(tmp_path.glob("*sub*"))


def test_make_subset_loads_by_name(tmp_path):
    write_cifar_batches(tmp_path / "src", classes=CIFAR10_CLASSES[:2], per_class=5)
    out = make_subset("cifar10", data=tmp_path / "src", out=tmp_path / "sub",
                      classes=parse_classes("automobile, airplane"), train_per_class=2,
                      test_per_class=1)  # fmt: skip
    back = load_dataset("imagefolder", data=out)
    assert back.classes == ("airplane", "automobile") and len(back.x_train) == 4
    with pytest.raises(DataError, match="already exists"):
        make_subset("cifar10", data=tmp_path / "missing", out=out, classes=["airplane"],
                    train_per_class=1, test_per_class=1)  # fmt: skip


def test_parse_classes():
    assert parse_classes("airplane,automobile, bird ,cat") == (
        "airplane", "automobile", "bird", "cat",
    )  # fmt: skip
    with pytest.raises(DataError, match=r"empty class name in 'cat,,dog'"):
        parse_classes("cat,,dog")
