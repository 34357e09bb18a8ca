"""Batching: examples of any corpus -> model inputs, decoding only the frames the sampling keeps.

The processor decides which frames the T -> T/4 sampling keeps (`sample_frame_indices`); the
collator decodes just those (a quarter of the PNG/JPEG decodes, or synthetic renders) and hands
them to the processor with `do_sample_frames=False`.
"""

from __future__ import annotations

from typing import Any

import datasets
import torch
from torch.utils.data import DataLoader

from .video_io import decode_video


class SignTranslationCollator:
    """`collate_fn` turning examples (columns id, text, num_frames, video) into pixel_values, pixel_mask, labels.

    processor: a `FlaLlmProcessor` (or a bare `FlaLlmVideoProcessor`: then no labels).
    training: random frame sampling and crops (the processor's training augmentation).
    with_labels: tokenize `text` into `labels` (-100 where padded); turn off for inference.
    max_target_length: cut longer targets (keeping the end-of-sequence token).
    return_ids: also return the example ids (a list) under "ids", e.g. to match predictions;
    pop it before calling the model.
    normalize: False keeps `pixel_values` uint8 (cropped and resized), a quarter of the bytes to move from loader
    workers and to the GPU; `video_processor.normalize(pixel_values, pixel_mask)` finishes them there (training does).
    """

    def __init__(
        self,
        processor,
        training: bool = False,
        with_labels: bool = True,
        max_target_length: int | None = None,
        return_ids: bool = False,
        normalize: bool = True,
    ):
        self.processor = processor
        self.video_processor = getattr(processor, "video_processor", processor)
        self.training = training
        self.with_labels = with_labels and hasattr(processor, "tokenizer")
        self.max_target_length = max_target_length
        self.return_ids = return_ids
        self.normalize = normalize

    def __call__(self, examples: list[dict[str, Any]]):
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        videos = []
        for example in examples:
            indices = self.video_processor.sample_frame_indices(int(example["num_frames"]), training=self.training)
            try:
                # Shrunk to the processor's size as decoded, as the pipeline does: training sees what translation sees.
                videos.append(decode_video(example["video"], indices, max_short_side=self.video_processor.size))
            except (ValueError, OSError) as error:
                raise type(error)(f"example {example.get('id', '?')}: {error}") from None
        if self.with_labels:
            batch = self.processor(
                videos=videos,
                text=[example["text"] for example in examples],
                training=self.training,
                max_target_length=self.max_target_length,
                do_sample_frames=False,
                do_normalize=self.normalize,
            )
        elif self.video_processor is self.processor:
            batch = self.processor(videos, training=self.training, do_sample_frames=False, do_normalize=self.normalize)
        else:
            batch = self.processor(
                videos=videos, training=self.training, do_sample_frames=False, do_normalize=self.normalize
            )
        if self.return_ids:
            batch["ids"] = [example["id"] for example in examples]
        return batch


def build_dataloader(
    dataset: datasets.Dataset | datasets.IterableDataset,
    processor,
    batch_size: int = 8,
    training: bool = False,
    shuffle: bool | None = None,
    num_workers: int = 0,
    pin_memory: bool | None = None,
    seed: int | None = None,
    drop_last: bool = False,
    **collator_options,
) -> DataLoader:
    """A torch DataLoader over one split, decoding in `num_workers` processes.

    shuffle defaults to `training`; pin_memory defaults to whether CUDA is available. Each
    worker gets its own torch seed from the DataLoader, so random frame sampling differs across
    workers. For an IterableDataset (streaming), shuffling uses a buffer and workers split the
    dataset's shards.
    """
    collator = SignTranslationCollator(processor, training=training, **collator_options)
    shuffle = training if shuffle is None else shuffle
    pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
    common = dict(
        batch_size=batch_size,
        collate_fn=collator,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )
    if isinstance(dataset, datasets.IterableDataset):
        if shuffle:
            dataset = dataset.shuffle(seed=seed, buffer_size=max(100, 10 * batch_size))
        return DataLoader(dataset, **common)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(dataset, shuffle=shuffle, generator=generator, **common)
