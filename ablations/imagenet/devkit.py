"""The labels of a flat ImageNet val/ (ILSVRC2012_val_00000001.JPEG, ...), as torchvision reads
them: from its meta.bin (written by `torchvision.datasets.ImageNet(root)`: wnid_to_classes and
the val WNIDs), or from the devkit, whose meta.mat maps ILSVRC2012_ID to WNID (leaf synsets
only) and whose ground-truth file lists one ID per val image in sorted file-name order. The IDs
are not in WNID order, so the map is needed; reading meta.mat needs scipy (optional)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from ablations.data.arrays import DataError
from ablations.data.imagefolder import member_bytes, member_parts

META_FILE = "meta.bin"  # torchvision's parsed devkit: (wnid_to_classes, val_wnids)
DEVKIT = "ILSVRC2012_devkit_t12"
GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"


def val_wnids(path: Path) -> list[str]:
    """The WNID of each flat val image (sorted by name): from torchvision's meta.bin, else the
    devkit (its tar.gz or extracted folder)."""
    if (path / META_FILE).is_file():
        import torch

        _, wnids = torch.load(path / META_FILE, weights_only=True)
        return [str(w) for w in wnids]
    for name in (f"{DEVKIT}.tar.gz", DEVKIT):
        if (path / name).exists():
            meta, truth = devkit_files(path / name)
            return ground_truth_wnids(parse_meta_mat(meta), truth.decode())
    raise DataError(
        f"{path}/val is flat but neither {META_FILE} nor the {DEVKIT} devkit is in {path}; "
        f"copy {DEVKIT}.tar.gz there, or sort val/ into <wnid>/ folders"
    )


def ground_truth_wnids(id_to_wnid: dict[int, str], text: str) -> list[str]:
    """ILSVRC2012_validation_ground_truth.txt (one ILSVRC2012_ID per line) as WNIDs."""
    try:
        return [id_to_wnid[int(line)] for line in text.split()]
    except (KeyError, ValueError) as err:
        raise DataError(
            f"the val ground truth names an unknown ILSVRC2012_ID ({err}); use the devkit's "
            "own meta.mat and ground-truth file"
        ) from None


def devkit_files(devkit: Path) -> tuple[bytes, bytes]:
    wanted = ("data/meta.mat", GROUND_TRUTH)
    if devkit.is_dir():
        return (devkit / wanted[0]).read_bytes(), (devkit / wanted[1]).read_bytes()
    found: dict[str, bytes] = {}
    with tarfile.open(devkit) as tar:
        for member in tar:
            rel = "/".join(member_parts(member.name)[1:])
            if member.isfile() and rel in wanted:
                found[rel] = member_bytes(tar, member)
    if len(found) != 2:
        raise DataError(f"{devkit} lacks {' or '.join(w for w in wanted if w not in found)}")
    return found[wanted[0]], found[wanted[1]]


def parse_meta_mat(raw: bytes) -> dict[int, str]:
    """ILSVRC2012_ID -> WNID of the leaf synsets, as torchvision's `parse_meta_mat`."""
    try:
        import scipy.io as sio
    except ImportError:
        raise DataError(
            "reading the devkit's meta.mat needs scipy (pip install scipy), or run "
            "torchvision.datasets.ImageNet(root) once to write meta.bin"
        ) from None
    meta = sio.loadmat(io.BytesIO(raw), squeeze_me=True)["synsets"]
    leaves = [m for m in meta if int(m[4]) == 0]
    return {int(m[0]): str(m[1]) for m in leaves}
