"""Datasets: where data is looked for, what each name opens, and seeded training crops."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hyreslib.core import roots
from hyreslib.core.images import to_uint8
from hyreslib.datasets import data


def _write_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0, suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"img{i:02d}{suffix}"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


# --- data root ------------------------------------------------------------------------------

def test_data_root_precedence(monkeypatch, tmp_path):
    env, explicit = tmp_path / "from_env", tmp_path / "explicit"
    env.mkdir()
    monkeypatch.setenv("HYRES_DATA", str(env))
    assert roots.data_root(explicit) == explicit.resolve()
    assert roots.data_root() == env.resolve()
    monkeypatch.delenv("HYRES_DATA")
    assert roots.data_root() == roots.PROJECT_ROOT / "data"
    monkeypatch.setenv("HYRES_DATA", "")
    assert roots.data_root() == roots.PROJECT_ROOT / "data"


def test_data_root_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert roots.data_root("~/datasets") == (tmp_path / "datasets").resolve()


def test_a_hyres_data_that_names_no_folder_is_an_error_not_the_embedded_images(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYRES_DATA", "../shared/data")
    for opens in (data.test_set, data.train_set):
        with pytest.raises(NotADirectoryError, match="HYRES_DATA='../shared/data' names no folder"):
            opens()


def test_hyres_run_hands_the_kernels_an_absolute_hyres_data(monkeypatch, tmp_path):
    """The kernels run in notebooks/, so a relative HYRES_DATA must be made absolute first."""
    from hyreslib.pipeline import runner

    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYRES_DATA", "data")
    with pytest.raises(ValueError, match="no notebook matches"):  # stops there, after fixing the variable
        runner.run_pipeline("quick", only=["99"])
    assert os.environ["HYRES_DATA"] == str(tmp_path / "data")


# --- embedded images ------------------------------------------------------------------------

def test_embedded_splits_are_disjoint_and_load():
    digests: dict[str, str] = {}
    for split, names in data.EMBEDDED_SPLITS.items():
        images = data.embedded(split)
        assert images.names == list(names) and len(images) == len(names)
        assert "embedded" in images.describe() and split in images.describe()
        for name, x in images:
            assert x.dim() == 3 and x.shape[0] == 3 and x.dtype == torch.float32
            assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
            digest = hashlib.sha256(to_uint8(x).tobytes()).hexdigest()
            assert digest not in digests, f"{split}/{name} is also {digests.get(digest)}"
            digests[digest] = f"{split}/{name}"
    all_names = [n for names in data.EMBEDDED_SPLITS.values() for n in names]
    assert len(all_names) == len(set(all_names))
    scenes = {split: {n.removesuffix("_left").removesuffix("_right") for n in names}
              for split, names in data.EMBEDDED_SPLITS.items()}
    assert not scenes["test"] & (scenes["train"] | scenes["validation"])  # test scenes are never seen before


def test_embedded_bad_split():
    with pytest.raises(ValueError, match="embedded split must be one of"):
        data.embedded("holdout")


# --- named and folder datasets --------------------------------------------------------------

def test_folder_dataset(tmp_path):
    _write_images(tmp_path / "pics", [(8, 12), (10, 6)])
    Image.new("RGB", (9, 7)).save(tmp_path / "pics" / "photo.JPG")  # suffixes match in any case
    (tmp_path / "pics" / "notes.txt").write_text("not an image")
    (tmp_path / "pics" / "sub.png").mkdir()
    images = data.dataset(str(tmp_path / "pics"))
    assert images.names == ["img00", "img01", "photo"]
    assert images.describe() == f"pics [test]: 3 images from {(tmp_path / 'pics').resolve()}"
    name, x = images[1]
    assert name == "img01" and x.shape == (3, 10, 6)
    assert images[2][1].shape == (3, 7, 9)
    assert len(images.subset(1)) == 1 and len(images.subset(None)) == 3 and len(images.subset(10)) == 3


def test_folder_dataset_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        data.dataset(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="unknown dataset 'nowhere'"):
        data.dataset("nowhere")


def test_missing_dataset_message_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        data.dataset("kodak", "test", root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "kodak") in message
    assert "hyres data download kodak" in message and "HYRES_DATA" in message
    with pytest.raises(FileNotFoundError, match="cid22 \\(train\\) not found"):
        data.dataset("cid22", "train", root=tmp_path)
    with pytest.raises(ValueError, match="cid22 has no 'test' split"):
        data.dataset("cid22", "test", root=tmp_path)


def test_auto_sets_fall_back_to_embedded_then_find_real_data(tmp_path):
    assert data.test_set(root=tmp_path).name == "embedded"
    assert data.train_set(root=tmp_path).name == "embedded"
    assert data.train_set(split="validation", root=tmp_path).split == "validation"
    _write_images(tmp_path / "kodak", [(8, 8)] * 2)
    _write_images(tmp_path / "train" / "cid22" / "training", [(8, 8)] * 3)
    assert (data.test_set(root=tmp_path).name, len(data.test_set(root=tmp_path))) == ("kodak", 2)
    assert (data.train_set(root=tmp_path).name, len(data.train_set(root=tmp_path))) == ("cid22", 3)
    assert data.train_set(split="validation", root=tmp_path).name == "embedded"


def test_kodak(kodak):
    assert kodak.names == [f"kodim{i:02d}" for i in range(1, 25)]
    name, x = kodak[3]
    assert name == "kodim04" and x.shape == (3, 768, 512)  # one of the portrait images


# --- training crops -------------------------------------------------------------------------

@pytest.fixture
def small_set(tmp_path) -> data.ImageSet:
    _write_images(tmp_path / "train", [(40, 50), (36, 64), (48, 48), (20, 30), (10, 10)], seed=3)
    return data.dataset(str(tmp_path / "train"), split="train")


def _batches(loader) -> list[torch.Tensor]:
    return [b.clone() for b in loader]


def test_crop_loader_is_seeded(small_set):
    first = _batches(data.crop_loader(small_set, 16, batch_size=2, seed=7, crops_per_image=2))
    again = _batches(data.crop_loader(small_set, 16, batch_size=2, seed=7, crops_per_image=2))
    other = _batches(data.crop_loader(small_set, 16, batch_size=2, seed=8, crops_per_image=2))
    assert len(first) == 5  # 10 crops in batches of 2
    assert all(b.shape == (2, 3, 16, 16) for b in first)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_crop_loader_same_crops_with_worker_processes(small_set):
    serial = _batches(data.crop_loader(small_set, 16, batch_size=2, seed=1, workers=0))
    parallel = _batches(data.crop_loader(small_set, 16, batch_size=2, seed=1, workers=2))
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel)) and len(serial) == len(parallel)


def test_epochs_change_the_crops(small_set):
    ds = data.CropDataset(small_set, 16, seed=0)
    epoch0 = [ds[i] for i in range(len(ds))]
    ds.set_epoch(1)
    epoch1 = [ds[i] for i in range(len(ds))]
    ds.set_epoch(0)
    assert all(torch.equal(a, ds[i]) for i, a in enumerate(epoch0))
    assert not all(torch.equal(a, b) for a, b in zip(epoch0, epoch1))


def test_drop_last_and_transform(small_set):
    loader = data.crop_loader(small_set, 8, batch_size=2, transform=lambda x: x * 0 + 1)
    batches = list(loader)
    assert len(batches) == 2  # 5 crops: the odd one is dropped
    assert all(torch.equal(b, torch.ones_like(b)) for b in batches)


@pytest.mark.parametrize("shape", [(3, 20, 30), (3, 10, 10), (3, 5, 64)])
def test_small_images_are_padded_not_resized(shape):
    """Images smaller than the crop keep their own pixel values (padding, no interpolation)."""
    img = torch.randint(0, 256, shape).float().div(255)
    for seed in range(5):
        crop = data.random_crop(img, 32, random.Random(seed))
        assert crop.shape == (3, 32, 32)
        assert set(crop.flatten().tolist()) <= set(img.flatten().tolist())


def test_crops_cover_all_flips():
    img = torch.arange(3 * 8 * 8, dtype=torch.float32).view(3, 8, 8)
    variants = {"none": img, "h": img.flip(-1), "v": img.flip(-2), "hv": img.flip(-1).flip(-2)}
    seen = set()
    for seed in range(40):
        crop = data.random_crop(img, 8, random.Random(seed))
        match = [k for k, v in variants.items() if torch.equal(crop, v)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == set(variants)


def test_crops_come_from_inside_the_image():
    img = torch.rand(3, 30, 40)
    for seed in range(10):
        crop = data.random_crop(img, 12, random.Random(seed))
        windows = img.unfold(1, 12, 1).unfold(2, 12, 1)  # (3, 19, 29, 12, 12)
        unflipped = [crop, crop.flip(-1), crop.flip(-2), crop.flip(-1).flip(-2)]
        assert any((windows == c[:, None, None]).flatten(3).all(-1).all(0).any() for c in unflipped)


# --- augmentation of the embedded training set ------------------------------------------------

def test_only_the_embedded_training_split_is_augmented(tmp_path):
    assert data.embedded("train").augment and "augmented" in data.embedded("train").subset(2).describe()
    assert not data.embedded("test").augment and not data.embedded("validation").augment
    _write_images(tmp_path / "pics", [(8, 12)])
    assert not data.dataset(str(tmp_path / "pics"), "train").augment


def test_augmented_crops_skip_flat_areas_rescale_and_reorder_colours():
    """A half-black image (dark sky, microscope background) gives textured crops; the colour order
    and the scale vary between crops."""
    texture = torch.rand(3, 64, 128) * torch.tensor([1.0, 0.5, 0.25])[:, None, None]
    img = torch.cat([torch.zeros(3, 64, 128), texture], dim=1)
    crops = [data.augmented_crop(img, 32, random.Random(seed)) for seed in range(40)]
    assert all(c.shape == (3, 32, 32) for c in crops)
    flat = sum(float(c.std()) < data.FLAT_STD for c in crops)
    plain = sum(float(data.random_crop(img, 32, random.Random(s)).std()) < data.FLAT_STD for s in range(40))
    assert flat <= 2 < plain  # a black crop is drawn again (4 tries: about 1 in 16 stays black)
    brightest = {int(c.flatten(1).mean(1).argmax()) for c in crops if float(c.std()) >= data.FLAT_STD}
    assert brightest == {0, 1, 2}  # the strongest channel moves: colours are reordered
    ramp = torch.linspace(0, 1, 128).expand(3, 128, 128)
    steps = {round(float(data.augmented_crop(ramp, 32, random.Random(s))[0, 0].diff().abs().mean()), 4)
             for s in range(20)}
    assert len(steps) > 5 and max(steps) < 2.2 / 127  # downscaled by up to 2, never upscaled
