"""PyTorch ``Dataset`` wrappers: generated scenes or labeled files -> (image, target) tensors.

Kept apart from the numpy modules of this package so that importing
``dice_seg_ros.data`` never imports torch. Randomness is a pure function of
``(seed, epoch, index)``, so results do not depend on DataLoader worker count
or on which DDP rank draws an index.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset
from tqdm import tqdm

from dice_seg_ros.data.augment import AugmentConfig, augment, resize_pair
from dice_seg_ros.data.datasets import LabeledImages
from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.runtime.inference import preprocess
from dice_seg_ros.runtime.model_meta import ModelMeta

# Seed ranges of generated scenes: training draws below VAL_SEED_BASE, validation
# from VAL_SEED_BASE and held-out evaluation from TEST_SEED_BASE, so no held-out
# scene is ever seen in training.
VAL_SEED_BASE = 1_000_000
TEST_SEED_BASE = 2_000_000


def to_tensors(rgb: np.ndarray, ids: np.ndarray, meta: ModelMeta
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise (H, W, 3) uint8 RGB to (3, H, W) float32 and ids to (H, W) int64.

    ``inference.preprocess`` does the normalisation, so training sees exactly
    the input the deployed model gets. ``rgb`` is already at the model size.
    """
    height, width = rgb.shape[:2]
    image = preprocess([rgb], meta, (width, height))[0]
    return torch.from_numpy(image), torch.from_numpy(np.ascontiguousarray(ids)).long()


class _Augmenting(Dataset):
    """Shared epoch/seed/augmentation handling."""

    def __init__(self, meta: ModelMeta, train: bool, seed: int,
                 cfg: AugmentConfig, ignore_index: int) -> None:
        self.meta = meta
        self.train = train
        self.seed = seed
        self.cfg = cfg
        self.ignore_index = ignore_index
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (and scenes, if generated) for a new epoch."""
        self.epoch = epoch

    def _finish(self, index: int, rgb: np.ndarray, ids: np.ndarray
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment (training) or resize (evaluation) to the model size, then tensorise."""
        width, height = self.meta.input_width, self.meta.input_height
        if self.train:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            rgb, ids = augment(rng, rgb, ids, width, height, self.cfg, self.ignore_index)
        else:
            rgb, ids = resize_pair(rgb, ids, width, height)
        return to_tensors(rgb, ids, self.meta)


class SyntheticScenes(_Augmenting):
    """Generated terrain scenes; training scenes change every epoch.

    Args:
        meta: model metadata (input size, normalisation).
        count: scenes per epoch.
        seed_base: first scene seed; training uses ``seed_base + epoch * count + i``.
        train: augment and draw new scenes each epoch (else fixed, plain resize).
        scene_size: (width, height) to generate at; default the model input size.

    """

    def __init__(self, meta: ModelMeta, count: int, seed_base: int = 0, train: bool = True,
                 scene_size: Sequence[int] | None = None, seed: int = 0,
                 cfg: AugmentConfig = AugmentConfig(), ignore_index: int = 255) -> None:
        super().__init__(meta, train, seed, cfg, ignore_index)
        if count < 1:
            raise ValueError(f"scene count must be >= 1, got {count}")
        self.count = count
        self.seed_base = seed_base
        self.scene_size = tuple(scene_size or (meta.input_width, meta.input_height))

    def __len__(self) -> int:
        """Return the number of scenes per epoch."""
        return self.count

    def scene_seed(self, index: int) -> int:
        """Return the generator seed of scene ``index`` in the current epoch."""
        shift = self.epoch * self.count if self.train else 0
        return self.seed_base + shift + index

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(image (3,H,W) float32, target (H,W) int64)``."""
        rgb, ids = generate_scene(self.scene_seed(index), *self.scene_size)
        return self._finish(index, rgb, ids)


class FileScenes(_Augmenting):
    """Labeled images from disk (see :mod:`dice_seg_ros.data.datasets`).

    Args:
        meta: model metadata (input size, normalisation).
        files: the labeled images.
        indices: which of ``files`` this split uses.
        train: augment (else plain resize).
        seed: augmentation seed.
        cfg: augmentation strengths.
        samples: training: draw at least this many samples per epoch, cycling
            through ``indices`` with new augmentation each time.
        cache: decode every frame once, up front, and keep it in memory shrunk
            to at most twice the network input (the most augmentation zooms
            in): epochs then skip JPEG/PNG decoding, and DataLoader workers,
            forked afresh every epoch, inherit the frames instead of decoding
            them again.

    """

    def __init__(self, meta: ModelMeta, files: LabeledImages, indices: Sequence[int],
                 train: bool = True, seed: int = 0, cfg: AugmentConfig = AugmentConfig(),
                 samples: int = 0, cache: bool = True) -> None:
        super().__init__(meta, train, seed, cfg, files.classes.ignore_index)
        self.files = files
        self.indices = list(indices)
        self.length = max(len(self.indices), samples if train else 0)
        self.cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        if cache:
            self.cache = {}
            for file_index in tqdm(self.indices, desc="decoding frames", leave=False,
                                   disable=True if len(self.indices) < 50 else None):
                self._load(file_index)

    def __len__(self) -> int:
        """Return the number of samples per epoch."""
        return self.length

    def _load(self, file_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode (or fetch from the cache) labeled image ``file_index``."""
        if self.cache is not None and file_index in self.cache:
            return self.cache[file_index]
        rgb, ids = self.files[file_index]
        if self.cache is not None:
            scale = 2.0 * max(self.meta.input_width / rgb.shape[1],
                              self.meta.input_height / rgb.shape[0])
            if scale < 1.0:
                rgb, ids = resize_pair(rgb, ids, max(1, round(rgb.shape[1] * scale)),
                                       max(1, round(rgb.shape[0] * scale)))
            self.cache[file_index] = (rgb, ids)
        return rgb, ids

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(image (3,H,W) float32, target (H,W) int64)``."""
        rgb, ids = self._load(self.indices[index % len(self.indices)])
        return self._finish(index, rgb, ids)


class EpochConcat(ConcatDataset):
    """Concatenated datasets that all follow :meth:`set_epoch` (real + generated)."""

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to every part."""
        for part in self.datasets:
            part.set_epoch(epoch)
