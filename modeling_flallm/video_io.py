"""Reading the videos the pipeline is given: video files (PyAV), frame folders, arrays, PIL images.

This module travels with saved checkpoints as remote code (next to `pipeline_flallm.py`), so it
imports nothing from the flallm package: numpy, PIL and PyAV only. Every reader takes the indices
of the frames to keep and converts only those to RGB, since the model keeps one frame in four.
Errors name the input and say what was expected.
"""

import logging
import os
import re
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v")


def _natural_key(name: str):
    """'frame2.png' before 'frame10.png' (corpora zero-pad, user exports often do not)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """A decoded frame as it is meant to be shown. Phones store video sideways and flag it with a display rotation
    (PyAV's `frame.rotation`: degrees counterclockwise, as ffmpeg's players apply it); every reader applies it."""
    quarter = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(frame, k=quarter)) if quarter else frame


def shrink(frame: np.ndarray, max_short_side: int | None) -> np.ndarray:
    """The frame with its shorter side cut to `max_short_side` (never enlarged; antialiased bilinear), as it is
    decoded: a long clip then costs the memory of small frames, not of full-size ones."""
    height, width = frame.shape[:2]
    if not max_short_side or min(height, width) <= max_short_side:
        return frame
    from PIL import Image

    scale = max_short_side / min(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))


def frame_names(folder, extensions=IMAGE_EXTENSIONS) -> list[str]:
    """Names of a frame folder's images in playing (natural) order: the one definition the pipeline, training and
    `flallm prepare` share. Hidden files (macOS `._images0001.png` resource forks) are not frames. Errors reading
    the folder (missing, not a folder, a symlink loop) are the OSError of the file system."""
    with os.scandir(folder) as entries:
        names = [
            entry.name
            for entry in entries
            if entry.name.lower().endswith(tuple(extensions)) and not entry.name.startswith(".")
        ]
    return sorted(names, key=_natural_key)


def list_frame_files(folder) -> list[Path]:
    """Image files of a frame folder in playing (natural) order."""
    folder = Path(folder)
    files = [folder / name for name in frame_names(folder)]
    if not files:
        raise ValueError(f"{folder}: the folder holds no frame images (expected {', '.join(IMAGE_EXTENSIONS)} files).")
    return files


def _select(num_frames: int, sample_indices, source: str) -> np.ndarray:
    if num_frames == 0:
        raise ValueError(f"{source}: the video is empty (no frames).")
    if sample_indices is None:
        return np.arange(num_frames)
    indices = np.asarray(sample_indices(num_frames), dtype=np.int64).reshape(-1)
    if indices.size == 0 or indices.min() < 0 or indices.max() >= num_frames:
        raise ValueError(f"{source}: frame sampling asked for frames outside 0..{num_frames - 1}.")
    return indices


# The colour policy of every reader: 8-bit modes convert to RGB (alpha dropped); 16-bit and float modes are refused,
# since converting them would silently clip.
CONVERTIBLE_MODES = frozenset({"RGB", "L", "LA", "La", "RGBA", "RGBX", "P", "PA", "1", "CMYK", "YCbCr"})


def image_to_rgb(image, source: str) -> np.ndarray:
    """uint8 (H, W, 3) from a PIL image, by the colour policy above; errors name `source`."""
    if image.mode not in CONVERTIBLE_MODES:
        raise ValueError(
            f"{source}: image mode {image.mode!r} is not supported; expected 8-bit RGB, grayscale or RGBA."
        )
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _stack(frames: list[np.ndarray], source: str) -> np.ndarray:
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise ValueError(f"{source}: frames differ in size ({sorted(shapes)}); expected one size for the whole video.")
    return np.stack(frames)


def read_frame_folder(folder, sample_indices=None, max_short_side=None) -> np.ndarray:
    """uint8 (T, H, W, 3) from a folder of frame images, reading only the sampled ones (see `shrink`)."""
    from PIL import Image

    files = list_frame_files(folder)
    frames = []
    for index in _select(len(files), sample_indices, str(folder)):
        path = files[index]
        try:
            with Image.open(path) as image:
                frames.append(shrink(image_to_rgb(image, str(path)), max_short_side))
        except OSError as error:
            raise ValueError(f"{path}: cannot read the frame image ({error}).") from None
    return _stack(frames, str(folder))


def _open(path: str):
    import av

    try:
        container = av.open(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such video file.") from None
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise ValueError(
            f"{path}: cannot read the video ({error}); expected a video file PyAV can decode (mp4, webm, avi, ...)."
        ) from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path}: the file holds no video stream.")
    return container


def count_video_frames(path) -> int:
    """Number of frames in a video file: the container's count, else counted packets (no decoding)."""
    import av

    path = str(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        try:
            return sum(1 for packet in container.demux(stream) if packet.size)
        except av.error.FFmpegError as error:
            raise ValueError(f"{path}: cannot read the video ({error}).") from None


def read_video_file(path, sample_indices=None, max_short_side=None) -> np.ndarray:
    """uint8 (T, H, W, 3) from a video file with PyAV, converting only the sampled frames to RGB (see `shrink`)."""
    import av

    path = str(path)
    indices = _select(count_video_frames(path), sample_indices, path)
    wanted = set(indices.tolist())
    last = int(indices.max())
    decoded, count = {}, 0
    with _open(path) as container:
        try:
            for index, frame in enumerate(container.decode(video=0)):
                count = index + 1
                if index in wanted:
                    decoded[index] = shrink(upright(frame.to_ndarray(format="rgb24"), frame.rotation), max_short_side)
                if index >= last:
                    break
        except av.error.FFmpegError as error:
            raise ValueError(f"{path}: the video is corrupt after {count} decoded frames ({error}).") from None
    if not decoded:
        raise ValueError(f"{path}: no frame could be decoded; the video is empty or unreadable.")
    missing = [i for i in indices.tolist() if i not in decoded]
    if missing:  # container frame counts can overshoot by a frame or two: reuse the last decoded frame, and say so
        logging.getLogger(__name__).warning(
            "%s: frames %s requested but only %d decoded; repeating the last frame", path, missing[:5], count
        )
    final = decoded[max(decoded)]
    return np.stack([decoded.get(i, final) for i in indices.tolist()])


def describe(video) -> str:
    """A short name for an input, for error messages."""
    if isinstance(video, (str, os.PathLike)):
        return str(video)
    if isinstance(video, np.ndarray):
        return f"array of shape {video.shape} and dtype {video.dtype}"
    if isinstance(video, (list, tuple)):
        return f"list of {len(video)} frames"
    return type(video).__name__


def is_frame_list(video) -> bool:
    """A list or tuple of frames (PIL images or (H, W, 3) arrays) is one video, not a batch."""
    if not isinstance(video, (list, tuple)) or not video:
        return False
    first = video[0]
    return hasattr(first, "convert") or (isinstance(first, np.ndarray) and first.ndim == 3)


def load_video(video, sample_indices=None, max_short_side=None) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB frames of one video, keeping only `sample_indices(T)` when given.

    `video` is a video file path, a folder of frame images, a uint8 array (T, H, W, 3), a torch
    uint8 tensor of that shape, or a list of PIL images / (H, W, 3) arrays. Files and folders are
    read frame by frame, each kept frame shrunk to `max_short_side` as it is decoded (`shrink`).
    """
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if path.is_dir():
            return read_frame_folder(path, sample_indices, max_short_side)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such video file or frame folder.")
        return read_video_file(path, sample_indices, max_short_side)
    if hasattr(video, "numpy") and not isinstance(video, np.ndarray):  # torch tensor
        video = video.detach().cpu().numpy()
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ValueError(f"video {describe(video)}: expected uint8 frames of shape (T, H, W, 3).")
        return video[_select(len(video), sample_indices, f"video {describe(video)}")]
    if isinstance(video, (list, tuple)):
        frames = []
        for i in _select(len(video), sample_indices, "video list"):
            frame = video[i]
            if hasattr(frame, "convert"):
                frames.append(image_to_rgb(frame, f"frame {i}"))
            elif isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[-1] == 3 and frame.dtype == np.uint8:
                frames.append(frame)
            else:
                raise ValueError(
                    f"frame {i} of a {describe(video)}: expected a PIL image or a uint8 (H, W, 3) array, got {describe(frame)}."
                )
        return _stack(frames, describe(video))
    raise ValueError(
        f"Cannot read a video from {describe(video)}: expected a video file path, a folder of frame images, "
        "a uint8 array (T, H, W, 3) or a list of PIL images."
    )
