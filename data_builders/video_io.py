"""Decoding frames from every form a `video` takes, reading only the frames asked for.

The T -> T/4 sampling keeps a quarter of the frames, so decoding the rest would waste three
quarters of the data-loading time: every reader here takes `indices` and touches only those
frames (for H.264 video, earlier frames still have to be decoded, but only kept frames are
converted to RGB).

Colour policy: frames are always returned as 8-bit RGB. Grayscale, palette, CMYK and RGBA/LA
images are converted (alpha is dropped; sign language frames carry no transparency). Images
with more than 8 bits per channel (modes I, I;16, F) are refused, because converting them
would silently clip.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from modeling_flallm.video_io import IMAGE_EXTENSIONS, frame_names, image_to_rgb, upright  # one definition of each

from .common import check_frame_indices

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def read_image(source: str | os.PathLike | bytes, name: str | None = None) -> np.ndarray:
    """One frame (a file path or encoded bytes) as uint8 RGB; errors name the file."""
    name = name or (f"<{len(source)} bytes>" if isinstance(source, bytes) else str(source))
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()
            return image_to_rgb(image, name)
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: frame file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{name}: could not decode the frame ({error}); expected a valid PNG/JPEG image") from None


def _stack(frames: list[np.ndarray], names: list[str]) -> np.ndarray:
    if not frames:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    shape = frames[0].shape
    for frame, name in zip(frames, names):
        if frame.shape != shape:
            raise ValueError(
                f"{name}: frame is {frame.shape[1]}x{frame.shape[0]}, expected {shape[1]}x{shape[0]} like the first kept frame"
            )
    return np.stack(frames)


def read_frame_files(paths: Sequence[str | os.PathLike], indices=None) -> np.ndarray:
    """Frames from a list of image files, decoding only `indices`."""
    indices = check_frame_indices(indices, len(paths), str(Path(paths[0]).parent) if paths else "<frame list>")
    chosen = [str(paths[i]) for i in indices]
    return _stack([read_image(path) for path in chosen], chosen)


def _open_video(path: str):
    import av

    try:
        return av.open(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: video file not found") from None
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise ValueError(
            f"{path}: could not open the video ({error}); expected a readable video file (e.g. H.264 mp4)"
        ) from None


def probe_video(path: str | os.PathLike) -> tuple[int, float, tuple[int, int]]:
    """(number of frames, frames per second, (height, width)) from the container, without decoding.

    The frame count comes from the container index when present, otherwise from counting packets.
    """
    import av

    path = str(path)
    with _open_video(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream; expected a video file")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise ValueError(f"{path}: the container gives no frame rate")
        num_frames = stream.frames
        try:
            if not num_frames:
                num_frames = sum(1 for packet in container.demux(stream) if packet.size)
        except av.error.FFmpegError as error:
            raise ValueError(f"{path}: could not read the video ({error})") from None
        return int(num_frames), float(rate), (stream.codec_context.height, stream.codec_context.width)


def _video_file_frames(path: str) -> Iterator[Any]:
    """PyAV frames of the first video stream, in order, not yet converted to RGB; errors name the file."""
    import av

    with _open_video(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream; expected a video file")
        count = 0
        try:
            for frame in container.decode(container.streams.video[0]):
                count += 1
                yield frame
        except av.error.FFmpegError as error:
            raise ValueError(f"{path}: could not decode the video after {count} decoded frames ({error})") from None


def read_video_file(path: str | os.PathLike, indices=None) -> np.ndarray:
    """Frames of a video file with PyAV; only the frames in `indices` are converted to RGB."""
    path = str(path)
    wanted = None if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if wanted is not None and wanted.size and wanted.min() < 0:
        raise ValueError(f"{path}: negative frame index {wanted.min()}")
    last = None if wanted is None else (int(wanted.max()) if wanted.size else -1)
    keep = None if wanted is None else set(wanted.tolist())
    decoded: dict[int, np.ndarray] = {}
    count = 0
    with contextlib.closing(_video_file_frames(path)) as frames:  # closes the file when we stop early
        for index, frame in enumerate(frames):
            if last is not None and index > last:
                break
            count = index + 1
            if keep is None or index in keep:
                decoded[index] = upright(frame.to_ndarray(format="rgb24"), frame.rotation)
    if count == 0:
        raise ValueError(f"{path}: video has no decodable frames")
    if wanted is None:
        return np.stack([decoded[i] for i in range(len(decoded))])
    missing = sorted(keep - decoded.keys())
    if missing:
        # Container frame counts can be off by a frame or two; use the last decoded frame then.
        logger.warning(
            "%s: frames %s requested but only %d decoded; repeating the last frame", path, missing[:5], count
        )
        final = max(decoded) if decoded else None
        if final is None:
            raise ValueError(f"{path}: none of the requested frames exist ({count} frames decoded)")
        for i in missing:
            decoded[i] = decoded[final]
    if not wanted.size:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    return np.stack([decoded[i] for i in wanted.tolist()])


def _decode_list(items: Sequence[Any], indices) -> np.ndarray:
    indices = check_frame_indices(indices, len(items), "<frame list>")
    frames, names = [], []
    for i in indices.tolist():
        item = items[i]
        name = f"frame {i}"
        if isinstance(item, Image.Image):
            frame = image_to_rgb(item, name)
        elif isinstance(item, dict):  # datasets.Image(decode=False): {"bytes": ..., "path": ...}
            name = item.get("path") or name
            frame = read_image(item["bytes"], name) if item.get("bytes") else read_image(item["path"])
        elif isinstance(item, (str, os.PathLike)):
            name = str(item)
            frame = read_image(item)
        else:
            frame = np.asarray(item)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
                raise ValueError(f"{name}: expected a uint8 (H,W,3) array, got {frame.dtype} {frame.shape}")
        frames.append(frame)
        names.append(name)
    return _stack(frames, names)


def decode_video(video: Any, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """uint8 (T,H,W,3) RGB frames of any `video` value, decoding only `indices` when given.

    Accepts the `video` of a raw dataset (a reference dict), of a prepared dataset (a list of
    JPEG frames, decoded or not), a frame folder or video file path, a list of PIL images or a
    (T,H,W,3) uint8 array.
    """
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"expected a (T,H,W,3) array, got shape {video.shape}")
        return np.ascontiguousarray(video[check_frame_indices(indices, len(video), "<array>")]).astype(
            np.uint8, copy=False
        )
    if hasattr(video, "numpy") and not isinstance(video, (list, tuple, dict)):  # a torch tensor
        return decode_video(video.numpy(), indices)
    if isinstance(video, dict):
        if video.get("synthetic"):
            from .synthetic import render_spec

            return render_spec(json.loads(video["synthetic"]), indices)
        if video.get("frames"):
            folder = Path(video["path"])
            return read_frame_files([folder / name for name in video["frames"]], indices)
        if video.get("path"):
            return decode_video(video["path"], indices)
        raise ValueError(f"video reference {video!r} names no frames, file or synthetic spec")
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if path.is_dir():
            names = frame_names(path)
            if not names:
                raise ValueError(f"{path}: folder holds no image frames ({', '.join(IMAGE_EXTENSIONS)})")
            return read_frame_files([path / name for name in names], indices)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such video file or frame folder")
        return read_video_file(path, indices)
    if isinstance(video, (list, tuple)):
        return _decode_list(video, indices)
    raise TypeError(f"cannot decode a video from {type(video).__name__}")


def iter_frames(video: Any) -> Iterator[np.ndarray]:
    """Every frame of `video` in order, one at a time, so long high-resolution clips (a 720p How2Sign
    clip is ~0.5 GB decoded) never sit in memory whole. Accepts what `decode_video` accepts."""
    if isinstance(video, dict) and not video.get("synthetic"):
        if video.get("frames"):
            folder = Path(video["path"])
            shape = None
            for name in video["frames"]:
                frame = read_image(folder / name)
                if shape is not None and frame.shape != shape:
                    raise ValueError(
                        f"{folder / name}: frame is {frame.shape[1]}x{frame.shape[0]}, expected {shape[1]}x{shape[0]} like the first frame"
                    )
                shape = frame.shape
                yield frame
            return
        video = video.get("path") or video
    if isinstance(video, (str, os.PathLike)) and Path(video).is_file():
        count = 0
        for count, frame in enumerate(_video_file_frames(str(video)), start=1):  # noqa: B007 (count read after the loop)
            yield upright(frame.to_ndarray(format="rgb24"), frame.rotation)
        if count == 0:
            raise ValueError(f"{video}: video has no decodable frames")
        return
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
