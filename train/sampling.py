"""Data order and randomness of a training run: what makes a resumed run continue exactly as the uninterrupted one.

The batch order of epoch e is a function of (seed, e); train-time augmentation of a batch is seeded by (seed, epoch,
example ids); `seed_of` derives every seed from its parts, stably across processes and Python runs.
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import Sampler

from .config import TrainConfig


def seed_of(*parts) -> int:
    """A 63-bit seed from any values (stable across processes and Python runs)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class EpochShuffleSampler(Sampler):
    """A random order that depends only on (seed, epoch): the same after a resume."""

    def __init__(self, num_examples: int, seed: int):
        self.num_examples = num_examples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_examples

    def __iter__(self):
        generator = torch.Generator().manual_seed(seed_of(self.seed, "order", self.epoch))
        yield from torch.randperm(self.num_examples, generator=generator).tolist()


class SeededCollator:
    """Runs a collator under a torch seed made of (seed, epoch, example ids), so train-time augmentation
    is the same whatever the number of DataLoader workers and after a resume."""

    def __init__(self, collator, seed: int, key: str = "id"):
        self.collator = collator
        self.seed = seed
        self.key = key
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, examples):
        ids = ",".join(str(example[self.key]) for example in examples)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_of(self.seed, "augment", self.epoch, ids))
            return self.collator(examples)


def sign_collator(processor, training: bool, config: TrainConfig, normalize: bool = True):
    """The dataset collator with the config's target length; `normalize=False`: uint8 frames, normalised by the
    training step on the device (`train.trainer.training_step`)."""
    from data_builders import SignTranslationCollator

    return SignTranslationCollator(
        processor, training=training, max_target_length=config.data.max_target_length, normalize=normalize
    )
