"""Decoding the `video` value of a dataset example, reading only the frames asked for.

The T -> T/4 sampling keeps a quarter of the frames, so decoding the rest would waste three quarters of the
data-loading time: every reader takes `indices` and touches only those frames (for H.264 video, earlier frames
still have to be decoded, but only kept frames are converted to RGB).

Files and folders are read by `modeling_flallm.video_io`, the reader the pipeline uses, so a clip trains as it is
translated (playing order, rotation, colour policy, error messages: see that module). This module adds what only
datasets have: reference dicts (frame lists, synthetic render specs), prepared JPEG frames, and the JPEG encoding
`flallm prepare` writes.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from modeling_flallm.video_io import (
    frame_file_frames,
    list_frame_files,
    load_video,
    probe_video,
    read_frame_files,
    read_image,
    select_frames,
    video_file_frames,
)

__all__ = ["decode_video", "encode_jpeg", "iter_frames", "probe_video", "resize_frame"]


def _frame_item(item: Any, index: int) -> Any:
    """A prepared dataset's frame as `load_video` takes it: `datasets.Image(decode=False)` dicts and paths are read."""
    if isinstance(item, dict):  # {"bytes": ..., "path": ...}
        name = item.get("path") or f"frame {index}"
        return read_image(item["bytes"], name) if item.get("bytes") else read_image(item["path"])
    if isinstance(item, (str, os.PathLike)):
        return read_image(item)
    if isinstance(item, np.ndarray) or hasattr(item, "convert"):
        return item
    return np.asarray(item)


def decode_video(
    video: Any, indices: Sequence[int] | np.ndarray | None = None, max_short_side: int | None = None
) -> np.ndarray:
    """uint8 (T,H,W,3) RGB frames of any `video` value, decoding only `indices` when given.

    Accepts the `video` of a raw dataset (a reference dict), of a prepared dataset (a list of
    JPEG frames, decoded or not), a frame folder or video file path, a list of PIL images or a
    (T,H,W,3) uint8 array. `max_short_side` shrinks frames larger than that as they are decoded, as the pipeline
    does with the processor's `size` (`modeling_flallm.video_io.shrink`): training then sees what translation sees.
    """
    if isinstance(video, dict):
        if video.get("synthetic"):
            from .synthetic import render_spec

            return load_video(render_spec(json.loads(video["synthetic"]), indices), None, max_short_side)
        if video.get("frames"):
            folder = Path(video["path"])
            files = [folder / name for name in video["frames"]]
            return read_frame_files(files, indices, max_short_side, source=str(folder))
        if video.get("path"):
            return load_video(video["path"], indices, max_short_side)
        raise ValueError(f"video reference {video!r} names no frames, file or synthetic spec")
    if isinstance(video, (list, tuple)):
        kept = select_frames(len(video), indices, "<frame list>")
        return load_video([_frame_item(video[i], i) for i in kept.tolist()], None, max_short_side)
    if isinstance(video, np.ndarray) and video.dtype != np.uint8:
        video = video.astype(np.uint8)
    return load_video(video, indices, max_short_side)


def iter_frames(video: Any) -> Iterator[np.ndarray]:
    """Every frame of `video` in order, one at a time, so long high-resolution clips (a 720p How2Sign
    clip is ~0.5 GB decoded) never sit in memory whole. Accepts what `decode_video` accepts."""
    if isinstance(video, dict) and not video.get("synthetic"):
        if video.get("frames"):
            yield from frame_file_frames([Path(video["path"]) / name for name in video["frames"]])
            return
        video = video.get("path") or video
    if isinstance(video, (str, os.PathLike)) and Path(video).is_file():
        yield from video_file_frames(video)
    elif isinstance(video, (str, os.PathLike)) and Path(video).is_dir():
        yield from frame_file_frames(list_frame_files(video))
    else:
        yield from decode_video(video)


def resize_frame(frame: np.ndarray, short_side: int | None) -> Image.Image:
    """PIL image with its shorter side at most `short_side` (never upscaled; aspect kept)."""
    image = Image.fromarray(frame)
    if short_side:
        height, width = frame.shape[:2]
        scale = short_side / min(height, width)
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = image.resize(size, Image.BILINEAR, reducing_gap=3.0)
    return image


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
