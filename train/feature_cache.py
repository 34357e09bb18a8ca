"""Stage-2 feature cache: run the frozen visual encoder once per video, train from the stored features.

In stage 2 the visual encoder (backbone + temporal module) is frozen, so `get_visual_features` gives
the same output for the same input every epoch; recomputing the CNN every epoch is wasted work
(most of a stage-2 step on small LLMs). The features of each split are written once to Arrow files
(`Array2D(shape=(None, C), dtype="float32")`, memory-mapped when read) under

    <cache_dir>/<encoder fingerprint>/<dataset fingerprint>-<split>/part-00000-of-00001.arrow, done.json

The encoder fingerprint hashes the encoder's weights and buffers (BatchNorm statistics included)
and the video processor's evaluation settings (frame rate, size, crop, max frames, normalisation),
so a different stage-1 encoder or preprocessing never reads stale features. With several processes
each computes one contiguous part; the main process writes `done.json` (the cache is complete) when
all parts exist. Processes wait for files, not in a collective barrier, so building the cache of a
large corpus cannot run into the distributed backend's timeout.

Trade-off: features are computed with evaluation preprocessing (centre crop, deterministic frame
sampling), so train-time augmentation (random crops, frame jitter, speed) does not apply to cached
features. Set `feature_cache.enabled: false` to train stage 2 on augmented videos instead (slower).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from datasets.arrow_writer import ArrowWriter
from tqdm.auto import tqdm

from data_builders.common import atomic_file, write_text_atomic

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
PROCESSOR_KEYS = ("frame_sample_rate", "size", "crop_size", "max_frames", "image_mean", "image_std")


def default_cache_dir() -> Path:
    return Path(os.environ.get("FLALLM_CACHE", Path.home() / ".cache" / "flallm")) / "features"


def encoder_fingerprint(model, video_processor) -> str:
    """Hash of everything `get_visual_features` depends on: encoder weights/buffers + eval preprocessing."""
    digest = hashlib.sha256(f"flallm-visual-features-v{CACHE_VERSION}".encode())
    for name, tensor in sorted(model.visual_encoder.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    settings = {key: getattr(video_processor, key) for key in PROCESSOR_KEYS}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def cache_folder(cache_dir: str | os.PathLike, fingerprint: str, dataset: datasets.Dataset, split: str) -> Path:
    data_key = hashlib.sha256(f"{dataset._fingerprint}:{len(dataset)}".encode()).hexdigest()[:16]
    return Path(cache_dir) / fingerprint[:24] / f"{data_key}-{split}"


def _wait_for(path: Path, what: str, poll_seconds: float = 2.0) -> None:
    """Block until another process has written `path` (the launcher stops us if that process dies)."""
    waited = 0.0
    while not path.is_file():
        time.sleep(poll_seconds)
        waited += poll_seconds
        if waited % 60 < poll_seconds:
            logger.info("Still waiting for %s (%s), %.0f s", what, path, waited)


@torch.no_grad()
def compute_features(
    model,
    dataset: datasets.Dataset,
    collate_fn,
    path: Path,
    batch_size: int,
    device,
    num_workers: int = 0,
    desc: str = "features",
) -> None:
    """Write id, text and the visual features of every example of `dataset` (in order) to `path`.

    `collate_fn` must be an evaluation collator (no augmentation) returning pixel_values/pixel_mask.
    The file is written under a temporary name and renamed when complete.
    """
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn, num_workers=num_workers
    )
    size = model.visual_encoder.output_size
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            "features": datasets.Array2D(shape=(None, size), dtype="float32"),
        }
    )
    rows = dataset.select_columns(["id", "text"])
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        temporary = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # one per process: runs may share a cache
        with atomic_file(path, temporary) as tmp, ArrowWriter(features=features, path=str(tmp)) as writer:
            start = 0
            for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
                values, mask = model.get_visual_features(
                    batch["pixel_values"].to(device), batch["pixel_mask"].to(device)
                )
                values = values.float().cpu().numpy()
                lengths = mask.sum(1).tolist()
                meta = rows[start : start + len(lengths)]
                for i, length in enumerate(lengths):
                    writer.write(
                        {
                            "id": meta["id"][i],
                            "text": meta["text"][i],
                            "features": np.ascontiguousarray(values[i, :length]),
                        }
                    )
                start += len(lengths)
            writer.finalize()
    finally:
        model.train(was_training)


def load_or_compute(
    model,
    video_processor,
    dataset: datasets.Dataset,
    split: str,
    collate_fn,
    cache_dir,
    batch_size: int,
    device,
    accelerator=None,
    num_workers: int = 0,
) -> datasets.Dataset:
    """The cached features of `dataset`, in dataset order; missing ones are computed first (each
    process of `accelerator` computes a contiguous part). Every process gets the whole cache."""
    folder = cache_folder(cache_dir, encoder_fingerprint(model, video_processor), dataset, split)
    done = folder / "done.json"
    num_parts = accelerator.num_processes if accelerator is not None else 1
    index = accelerator.process_index if accelerator is not None else 0
    if done.is_file():
        logger.info("Reusing cached visual features of %s: %s", split, folder)
    else:
        part = folder / f"part-{index:05d}-of-{num_parts:05d}.arrow"
        if not part.is_file():
            shard = dataset.shard(num_shards=num_parts, index=index, contiguous=True)
            logger.info(
                "Computing stage-2 visual features of %s (%d of %d examples) into %s",
                split,
                len(shard),
                len(dataset),
                part,
            )
            compute_features(model, shard, collate_fn, part, batch_size, device, num_workers, desc=f"features {split}")
        if index == 0:
            parts = [folder / f"part-{i:05d}-of-{num_parts:05d}.arrow" for i in range(num_parts)]
            for other in parts:
                _wait_for(other, f"feature cache part of process {other.name[5:10]}")
            write_text_atomic(done, json.dumps({"parts": [p.name for p in parts], "rows": len(dataset)}))
        else:
            _wait_for(done, "the feature cache to be complete")
    names = json.loads(done.read_text(encoding="utf-8"))["parts"]
    cached = datasets.concatenate_datasets([datasets.Dataset.from_file(str(folder / name)) for name in names])
    if len(cached) != len(dataset):
        raise ValueError(
            f"feature cache {folder} has {len(cached)} rows but {split} has {len(dataset)}: delete the folder"
        )
    return cached.with_format("numpy")


class FeatureCollator:
    """Cached feature rows -> `visual_features` (B, N, C), `visual_mask` (B, N), `labels` (B, L)."""

    def __init__(self, processor, max_target_length: int | None = None):
        self.processor = processor
        self.max_target_length = max_target_length

    def __call__(self, examples: list[dict]) -> dict:
        arrays = [np.asarray(example["features"], dtype=np.float32) for example in examples]
        longest = max(array.shape[0] for array in arrays)
        visual_features = torch.zeros(len(arrays), longest, arrays[0].shape[1])
        visual_mask = torch.zeros(len(arrays), longest, dtype=torch.long)
        for i, array in enumerate(arrays):
            visual_features[i, : array.shape[0]] = torch.from_numpy(array)
            visual_mask[i, : array.shape[0]] = 1
        labels = self.processor.tokenize_targets(
            [str(example["text"]) for example in examples], max_length=self.max_target_length
        )
        return {"visual_features": visual_features, "visual_mask": visual_mask, "labels": labels}
