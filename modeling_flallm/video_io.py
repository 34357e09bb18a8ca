"""The one reader of video files and frame images: the pipeline, training, `flallm prepare`, translate and evaluate
all decode through this module, so a clip gives the same frames wherever it is read.

It travels with saved checkpoints as remote code (next to `pipeline_flallm.py`), so it imports nothing from the
flallm package: numpy, PIL and PyAV only. Every reader takes the frames to keep (`frames`: None for all, indices,
or a function of the frame count, like the processor's T -> T/4 sampling) and converts only those to RGB.

One policy for every reader:
- a frame folder plays in natural order (`frame2.png` before `frame10.png`); hidden files (`._*`) are not frames;
- a video's display rotation (phones store video sideways) is applied;
- 8-bit images of any mode become RGB (alpha dropped); 16-bit and float images are refused, since converting them
  would silently clip;
- a video file with fewer frames than its container says repeats its last frame, with a warning;
- errors name the file and say what was expected.
"""

import contextlib
import io
import logging
import os
import re
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v")


# ------------------------------------------------------------------------------------------------
# Which frames


def select_frames(num_frames: int, frames, source: str) -> np.ndarray:
    """The int64 indices `frames` asks for among `num_frames`: None for all, a function of the count, or indices."""
    if num_frames == 0:
        raise ValueError(f"{source}: the video is empty (no frames).")
    if frames is None:
        return np.arange(num_frames)
    indices = np.asarray(frames(num_frames) if callable(frames) else frames, dtype=np.int64).reshape(-1)
    if indices.size == 0:
        raise ValueError(f"{source}: no frames were asked for.")
    if indices.min() < 0 or indices.max() >= num_frames:
        raise ValueError(
            f"{source}: frame indices {indices.min()}..{indices.max()} out of range for {num_frames} frames."
        )
    return indices


# ------------------------------------------------------------------------------------------------
# One frame


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


# The colour policy: 8-bit modes convert to RGB (alpha dropped); 16-bit and float modes are refused.
CONVERTIBLE_MODES = frozenset({"RGB", "L", "LA", "La", "RGBA", "RGBX", "P", "PA", "1", "CMYK", "YCbCr"})


def image_to_rgb(image, source: str) -> np.ndarray:
    """uint8 (H, W, 3) from a PIL image, by the colour policy above; errors name `source`."""
    if image.mode not in CONVERTIBLE_MODES:
        raise ValueError(
            f"{source}: image mode {image.mode!r} is not supported; expected 8-bit RGB, grayscale or RGBA."
        )
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def read_image(source, name: str | None = None) -> np.ndarray:
    """One frame (an image file or its encoded bytes) as uint8 RGB; errors name the file."""
    from PIL import Image, UnidentifiedImageError

    name = name or (f"<{len(source)} bytes>" if isinstance(source, bytes) else str(source))
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()
            return image_to_rgb(image, name)
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: frame file not found.") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{name}: could not decode the frame ({error}); expected a valid PNG/JPEG image.") from None


class _SameSize:
    """Checks that every frame of a video has the size of the first one, naming the odd frame."""

    def __init__(self):
        self.shape = None

    def __call__(self, frame: np.ndarray, name: str) -> np.ndarray:
        if self.shape is None:
            self.shape = frame.shape
        elif frame.shape != self.shape:
            height, width = self.shape[:2]
            raise ValueError(
                f"{name}: frame is {frame.shape[1]}x{frame.shape[0]}, expected {width}x{height} like the first frame."
            )
        return frame


# ------------------------------------------------------------------------------------------------
# Frame folders and frame files


def _natural_key(name: str):
    """'frame2.png' before 'frame10.png' (corpora zero-pad, user exports often do not)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_names(folder, extensions=IMAGE_EXTENSIONS) -> list[str]:
    """Names of a frame folder's images in playing (natural) order. Hidden files (macOS `._images0001.png`
    resource forks) are not frames. Errors reading the folder (missing, not a folder, a symlink loop) are the
    OSError of the file system."""
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


def read_frame_files(files, frames=None, max_short_side=None, source: str | None = None) -> np.ndarray:
    """uint8 (T, H, W, 3) from a video's frame image files in order, reading only the kept ones (see `shrink`)."""
    source = source or (str(Path(files[0]).parent) if files else "<no frame files>")
    same_size = _SameSize()
    return np.stack(
        [
            same_size(shrink(read_image(files[index]), max_short_side), str(files[index]))
            for index in select_frames(len(files), frames, source)
        ]
    )


def frame_file_frames(files):
    """Every frame of a video's image files in order, one at a time, each the size of the first."""
    same_size = _SameSize()
    for file in files:
        yield same_size(read_image(file), str(file))


def read_frame_folder(folder, frames=None, max_short_side=None) -> np.ndarray:
    """uint8 (T, H, W, 3) from a folder of frame images (`frame_names` order), reading only the kept ones."""
    return read_frame_files(list_frame_files(folder), frames, max_short_side, str(folder))


# ------------------------------------------------------------------------------------------------
# Video files


def _open(path: str):
    import av

    try:
        container = av.open(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such video file.") from None
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise ValueError(
            f"{path}: could not open the video ({error}); expected a video file PyAV can decode (mp4, webm, avi, ...)."
        ) from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path}: the file holds no video stream.")
    return container


def _frame_count(container, path: str) -> int:
    """The container's frame count, else its counted packets (no decoding)."""
    import av

    stream = container.streams.video[0]
    if stream.frames:
        return int(stream.frames)
    try:
        return sum(1 for packet in container.demux(stream) if packet.size)
    except av.error.FFmpegError as error:
        raise ValueError(f"{path}: could not read the video ({error}).") from None


def probe_video(path) -> tuple[int, float, tuple[int, int]]:
    """(number of frames, frames per second, (height, width)) from the container, without decoding."""
    path = str(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise ValueError(f"{path}: the container gives no frame rate.")
        return _frame_count(container, path), float(rate), (stream.codec_context.height, stream.codec_context.width)


def count_video_frames(path) -> int:
    """Number of frames in a video file, from the container (no decoding; a frame rate is not needed)."""
    path = str(path)
    with _open(path) as container:
        return _frame_count(container, path)


def _raw_frames(path: str):
    """PyAV frames of the first video stream, in order, not yet converted to RGB (the conversion is what costs);
    errors name the file. Closing the generator early closes the file."""
    import av

    count = 0
    with _open(path) as container:
        try:
            for frame in container.decode(video=0):
                yield frame
                count += 1
        except av.error.FFmpegError as error:
            raise ValueError(f"{path}: the video is corrupt after {count} decoded frames ({error}).") from None


def video_file_frames(path, max_short_side=None):
    """Every frame of a video file in order, upright RGB, one at a time: a long clip never sits in memory whole."""
    path = str(path)
    count = 0
    with contextlib.closing(_raw_frames(path)) as stream:
        for count, frame in enumerate(stream, start=1):  # noqa: B007 (count read after the loop)
            yield shrink(upright(frame.to_ndarray(format="rgb24"), frame.rotation), max_short_side)
    if count == 0:
        raise ValueError(f"{path}: no frame could be decoded; the video is empty or unreadable.")


def read_video_file(path, frames=None, max_short_side=None) -> np.ndarray:
    """uint8 (T, H, W, 3) from a video file with PyAV, converting only the kept frames to RGB (see `shrink`).

    Explicit indices are taken as they are (no count needed); a function of the frame count gets the container's.
    """
    path = str(path)
    if frames is None:  # every frame: one pass, no count first
        return np.stack(list(video_file_frames(path, max_short_side)))
    if callable(frames):
        indices = select_frames(count_video_frames(path), frames, path)
    else:
        indices = np.asarray(frames, dtype=np.int64).reshape(-1)
        if indices.size == 0 or indices.min() < 0:
            raise ValueError(f"{path}: frame indices {indices.tolist()[:5]} ask for no frame or a negative one.")
    wanted, last = set(indices.tolist()), int(indices.max())
    decoded, count = {}, 0
    with contextlib.closing(_raw_frames(path)) as stream:
        for index, frame in enumerate(stream):
            count = index + 1
            if index in wanted:
                decoded[index] = shrink(upright(frame.to_ndarray(format="rgb24"), frame.rotation), max_short_side)
            if index >= last:
                break
    if not decoded:
        raise ValueError(
            f"{path}: none of the requested frames exist ({count} frames decoded)"
            if count
            else f"{path}: no frame could be decoded; the video is empty or unreadable."
        )
    missing = [i for i in indices.tolist() if i not in decoded]
    if missing:  # container frame counts can overshoot by a frame or two: reuse the last decoded frame, and say so
        logger.warning(
            "%s: frames %s requested but only %d decoded; repeating the last frame", path, missing[:5], count
        )
    final = decoded[max(decoded)]
    return np.stack([decoded.get(i, final) for i in indices.tolist()])


# ------------------------------------------------------------------------------------------------
# Any video


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


def _list_frame(frame, index: int, video) -> np.ndarray:
    if hasattr(frame, "convert"):
        return image_to_rgb(frame, f"frame {index}")
    if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[-1] == 3 and frame.dtype == np.uint8:
        return frame
    raise ValueError(
        f"frame {index} of a {describe(video)}: expected a PIL image or a uint8 (H, W, 3) array, got {describe(frame)}."
    )


def load_video(video, frames=None, max_short_side=None) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB frames of one video, keeping only `frames` (None: all; indices; or a function of the
    frame count, e.g. `processor.sample_frame_indices`).

    `video` is a video file path, a folder of frame images, a uint8 array (T, H, W, 3), a torch
    uint8 tensor of that shape, or a list of PIL images / (H, W, 3) arrays. Every kept frame is shrunk to
    `max_short_side` (`shrink`); files and folders are read frame by frame, each shrunk as it is decoded.
    """
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if path.is_dir():
            return read_frame_folder(path, frames, max_short_side)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such video file or frame folder.")
        return read_video_file(path, frames, max_short_side)
    if hasattr(video, "numpy") and not isinstance(video, np.ndarray):  # torch tensor
        video = video.detach().cpu().numpy()
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ValueError(f"video {describe(video)}: expected uint8 frames of shape (T, H, W, 3).")
        indices = select_frames(len(video), frames, f"video {describe(video)}")
        kept = video if frames is None else video[indices]  # all frames: no copy
        if max_short_side and min(kept.shape[1:3]) > max_short_side:
            kept = np.stack([shrink(frame, max_short_side) for frame in kept])
        return kept
    if isinstance(video, (list, tuple)):
        same_size = _SameSize()
        return np.stack(
            [
                shrink(same_size(_list_frame(video[i], i, video), f"frame {i}"), max_short_side)
                for i in select_frames(len(video), frames, describe(video))
            ]
        )
    raise ValueError(
        f"Cannot read a video from {describe(video)}: expected a video file path, a folder of frame images, "
        "a uint8 array (T, H, W, 3) or a list of PIL images."
    )
