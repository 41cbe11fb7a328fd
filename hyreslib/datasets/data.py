"""Datasets: where data lives, which images a notebook uses, and training crops.

Resolution of the data root: an explicit argument, else ``$HYRES_DATA``, else ``data/`` in the
project. Inside it the kit expects::

    kodak/kodimNN.png                      (test only)
    train/cid22/{training,validation}/     (train / validation)

A dataset is named ``kodak``, ``cid22``, ``embedded`` (scikit-image's bundled colour photographs,
always available offline) or given as a folder path. ``test_set()`` and ``train_set()`` fall back
to ``embedded`` when nothing else is present, and every dataset can say what it is
(:meth:`ImageSet.describe`), so a notebook never hides which data produced its numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..training.distributed import make_loader

from ..core.images import IMAGE_SUFFIXES, from_uint8, load_image
from ..core.roots import data_root

# scikit-image's bundled photographs, no image in two splits. The test images share no scene with
# training or validation. Training holds the natural photographs and textures (greyscale ones as
# three equal channels) and no mostly-black frame (hubble_deep_field, retina): trained on dark sky
# a codec learns a rate that photographs never get (0.20 bpp of y on such crops against 1.08 on the
# test photos). Validation is the right view of the one bundled stereo pair whose left view is
# trained on: it can only make validation optimistic, never the test numbers.
EMBEDDED_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "motorcycle_left", "immunohistochemistry", "camera", "brick", "grass", "gravel"),
    "validation": ("motorcycle_right",),
    "test": ("chelsea", "coffee", "rocket"),
}
LAYOUT = {"kodak": {"test": "kodak"},
          "cid22": {"train": "train/cid22/training", "validation": "train/cid22/validation"}}


def _embedded_image(name: str) -> np.ndarray:
    import skimage.data as skd

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skd.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    img = getattr(skd, name)()
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


@dataclass
class ImageSet(Sequence):
    """An ordered, named list of images loaded lazily: ``items`` are file paths or embedded names."""

    name: str
    split: str
    items: list = field(default_factory=list)
    source: str = ""
    augment: bool = False  # training crops get scale and colour augmentation (a set too small to train on as is)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        item = self.items[i]
        if isinstance(item, Path):
            return item.stem, load_image(item)
        return item, from_uint8(_embedded_image(item))

    @property
    def names(self) -> list[str]:
        return [p.stem if isinstance(p, Path) else p for p in self.items]

    def describe(self) -> str:
        augmented = ", crops augmented (scale, colour order)" if self.augment else ""
        return f"{self.name} [{self.split}]: {len(self)} images from {self.source}{augmented}"

    def subset(self, n: int | None) -> ImageSet:
        """The first ``n`` images (all when ``n`` is None or larger)."""
        return replace(self, items=self.items[:n] if n else list(self.items))


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def embedded(split: str) -> ImageSet:
    if split not in EMBEDDED_SPLITS:
        raise ValueError(f"embedded split must be one of {list(EMBEDDED_SPLITS)}")
    return ImageSet("embedded", split, list(EMBEDDED_SPLITS[split]), "scikit-image's bundled photographs",
                    augment=split == "train")


def dataset(name: str, split: str = "test", root: str | Path | None = None) -> ImageSet:
    """Open a dataset by name (``kodak``, ``cid22``, ``embedded``) or by folder path."""
    if name == "embedded":
        return embedded(split)
    if name in LAYOUT:
        if split not in LAYOUT[name]:
            raise ValueError(f"{name} has no {split!r} split (it has {list(LAYOUT[name])})")
        folder = data_root(root) / LAYOUT[name][split]
        if not folder.is_dir() or not list_images(folder):
            raise FileNotFoundError(
                f"{name} ({split}) not found in {folder}. Run `hyres data download {name}`, or set "
                f"HYRES_DATA to a folder that holds {LAYOUT[name][split]}/")
        return ImageSet(name, split, list_images(folder), str(folder))
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"unknown dataset {name!r}: not kodak, cid22, embedded or a folder")
    images = list_images(folder)
    if not images:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return ImageSet(folder.name, split, images, str(folder.resolve()))


def _first_available(candidates: Sequence[str], split: str, root) -> ImageSet:
    for name in candidates:
        try:
            return dataset(name, split, root)
        except FileNotFoundError:
            continue
    return embedded(split)


def test_set(name: str = "auto", root: str | Path | None = None) -> ImageSet:
    """The evaluation images: Kodak when present, else the embedded default."""
    return _first_available(["kodak"], "test", root) if name == "auto" else dataset(name, "test", root)


def train_set(name: str = "auto", split: str = "train", root: str | Path | None = None) -> ImageSet:
    """Training (``split='train'``) or validation images: CID22 when present, else embedded."""
    return _first_available(["cid22"], split, root) if name == "auto" else dataset(name, split, root)


def random_crop(img: torch.Tensor, size: int, rng: random.Random) -> torch.Tensor:
    """A random ``size``-square crop with random flips. Images smaller than the crop are
    reflect-padded (replicate when too small to reflect) rather than upscaled, so no pixel is
    invented by interpolation."""
    _, h, w = img.shape
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        mode = "reflect" if ph < h and pw < w else "replicate"
        img = F.pad(img.unsqueeze(0), (0, pw, 0, ph), mode=mode).squeeze(0)
        _, h, w = img.shape
    top, left = rng.randint(0, h - size), rng.randint(0, w - size)
    crop = img[:, top:top + size, left:left + size]
    if rng.random() < 0.5:
        crop = crop.flip(-1)
    if rng.random() < 0.5:
        crop = crop.flip(-2)
    return crop.contiguous()


MIN_SCALE = 0.5   # augmented crops come from the image downscaled by a factor in [MIN_SCALE, 1]
FLAT_STD = 0.02   # an augmented crop flatter than this (pixel std) is drawn again, up to FLAT_TRIES times
FLAT_TRIES = 4


def augmented_crop(img: torch.Tensor, size: int, rng: random.Random) -> torch.Tensor:
    """A crop for a small training set: the image downscaled by a random factor (antialiased, so
    detail gets denser, as in photographs taken at a lower resolution, and nothing is invented),
    a random crop that is not flat, and a random order of the colour channels."""
    scale = rng.uniform(MIN_SCALE, 1.0)
    h, w = img.shape[-2:]
    small = (max(size, round(h * scale)), max(size, round(w * scale)))
    if small != (h, w):
        img = F.interpolate(img.unsqueeze(0), size=small, mode="bilinear", antialias=True,
                            align_corners=False).squeeze(0).clamp(0, 1)
    for _ in range(FLAT_TRIES):
        crop = random_crop(img, size, rng)
        if crop.std() >= FLAT_STD:
            break
    order = list(range(3))
    rng.shuffle(order)
    return crop[order].contiguous()


class CropDataset(Dataset):
    """Random training crops from an :class:`ImageSet`, deterministic for a given seed and index.

    Decoded images are cached per worker, so each file is read once per worker, not once per crop.
    ``crops_per_image`` sets the epoch length: ``len = len(images) * crops_per_image``.
    """

    def __init__(self, images: ImageSet, crop: int, crops_per_image: int = 1, seed: int = 0,
                 transform: Callable[[torch.Tensor], object] | None = None):
        self.images, self.crop, self.per_image, self.seed = images, crop, crops_per_image, seed
        self.transform = transform
        self.epoch = 0
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.images) * self.per_image

    def set_epoch(self, epoch: int) -> None:
        """Change the crops drawn (call once per pass over the data)."""
        self.epoch = epoch

    def __getitem__(self, index: int):
        i = index % len(self.images)
        if i not in self._cache:
            self._cache[i] = self.images[i][1]
        rng = random.Random(hash((self.seed, self.epoch, index)))
        crop = (augmented_crop if self.images.augment else random_crop)(self._cache[i], self.crop, rng)
        return self.transform(crop) if self.transform else crop


def crop_loader(images: ImageSet, crop: int, batch_size: int, seed: int = 0, workers: int = 0,
                crops_per_image: int = 1, transform=None, shuffle: bool = True) -> DataLoader:
    """A seeded DataLoader of training crops (``workers`` background processes). ``batch_size``
    is the global batch: under DDP each rank loads its share (see ``distributed.make_loader``)."""
    ds = CropDataset(images, crop, crops_per_image, seed, transform)
    return make_loader(ds, batch_size, seed=seed, workers=workers, shuffle=shuffle)
