"""Video processor of FLa-LLM: videos -> `pixel_values` (batch, frames, 3, H, W) and `pixel_mask`.

Written with torch/numpy only: transformers' `BaseVideoProcessor` needs torchvision, which is not
available everywhere (and not needed for resize + crop + normalise).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import logging
from transformers.video_processing_utils import VideoProcessorMixin

logger = logging.get_logger(__name__)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _is_pil_image(value) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "convert")


def _video_to_tensor(video, index: int) -> torch.Tensor:
    """One video -> uint8 tensor (T, 3, H, W). Accepts (T,H,W,3) uint8 numpy/tensor or a list of PIL images."""
    if isinstance(video, (list, tuple)):
        if len(video) == 0:
            raise ValueError(f"video {index} has no frames: expected at least one frame.")
        if not all(_is_pil_image(frame) for frame in video):
            raise ValueError(f"video {index} is a list, but not of PIL images: got {type(video[0]).__name__}.")
        video = np.stack([np.asarray(frame.convert("RGB")) for frame in video])
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
    if not torch.is_tensor(video):
        raise ValueError(
            f"video {index} has type {type(video).__name__}: expected a uint8 array (frames, height, width, 3), "
            "a uint8 tensor of that shape, or a list of PIL images."
        )
    if video.dim() != 4 or video.shape[-1] != 3:
        raise ValueError(
            f"video {index} has shape {tuple(video.shape)}: expected (frames, height, width, 3) RGB frames."
        )
    if video.shape[0] == 0:
        raise ValueError(f"video {index} has no frames: expected at least one frame.")
    if video.dtype != torch.uint8:
        raise ValueError(f"video {index} has dtype {video.dtype}: expected uint8 pixel values in [0, 255].")
    return video.permute(0, 3, 1, 2)


_warned_long_video = False


def _warn_long_video(num_frames: int, wanted: int, max_frames: int) -> None:
    """Once per process: a clip longer than max_frames x frame_sample_rate is sampled more sparsely, over all of it."""
    global _warned_long_video
    if not _warned_long_video:
        _warned_long_video = True
        logger.warning(
            "A video of %d frames would keep %d frames; the model keeps at most max_frames=%d, spread over "
            "the whole clip (1 frame in %.1f instead of the trained rate). Raise the video processor's "
            "max_frames to keep the rate (memory grows with it).",
            num_frames,
            wanted,
            max_frames,
            num_frames / max_frames,
        )


def _is_single_video(videos) -> bool:
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        return videos.ndim == 4
    return isinstance(videos, (list, tuple)) and len(videos) > 0 and _is_pil_image(videos[0])


class FlaLlmVideoProcessor(VideoProcessorMixin):
    r"""
    Turns videos into `pixel_values` (batch, frames, 3, crop_size, crop_size) and `pixel_mask`.

    Frames are sampled T -> T/`frame_sample_rate` (the paper's 4x temporal downsampling), capped at
    `max_frames`, cropped to a square and resized to `crop_size`, then normalised with the ImageNet
    statistics the ResNet backbone was pre-trained with. At evaluation the crop is central and the
    sampling deterministic; at training (`training=True`) the crop position and scale, the sampling
    offsets and the playback speed are random (torch's RNG, so `torch.manual_seed` controls them).

    Args:
        frame_sample_rate (`int`, defaults to 4): keep one frame in this many.
        size (`int`, defaults to 256): shorter side the frame is notionally resized to before cropping.
        crop_size (`int`, defaults to 224): side of the square crop fed to the model.
        max_frames (`int`, defaults to 1024): longest sampled sequence; longer videos are subsampled.
        train_min_scale (`float`, defaults to 0.7): smallest crop area (relative) at training.
        train_speed_range (`tuple`, defaults to (0.8, 1.2)): playback speed jitter at training.
        image_mean, image_std: normalisation.
    """

    model_input_names = ["pixel_values", "pixel_mask"]

    def __init__(
        self,
        frame_sample_rate: int = 4,
        size: int = 256,
        crop_size: int = 224,
        max_frames: int = 1024,
        train_min_scale: float = 0.7,
        train_speed_range: tuple[float, float] | list[float] = (0.8, 1.2),
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        **kwargs,
    ):
        kwargs.pop("video_processor_type", None)
        super().__init__(**kwargs)
        if frame_sample_rate < 1:
            raise ValueError(f"frame_sample_rate={frame_sample_rate} is invalid: expected an integer >= 1.")
        if crop_size < 1 or size < crop_size:
            raise ValueError(f"size={size}, crop_size={crop_size} are invalid: expected 1 <= crop_size <= size.")
        if max_frames < 1:
            raise ValueError(f"max_frames={max_frames} is invalid: expected an integer >= 1.")
        self.frame_sample_rate = int(frame_sample_rate)
        self.size = int(size)
        self.crop_size = int(crop_size)
        self.max_frames = int(max_frames)
        self.train_min_scale = float(train_min_scale)
        self.train_speed_range = [float(v) for v in train_speed_range]
        self.image_mean = list(image_mean) if image_mean is not None else list(IMAGENET_MEAN)
        self.image_std = list(image_std) if image_std is not None else list(IMAGENET_STD)

    def sample_frame_indices(self, num_frames: int, training: bool = False) -> np.ndarray:
        """Indices of the frames the T -> T/`frame_sample_rate` sampling keeps.

        Evaluation: the centre of each of ceil(T/rate) equal segments. Training: a random speed
        in `train_speed_range` changes the number of segments, and each segment contributes a
        random frame. Decode only these frames when the storage allows it.
        """
        if num_frames < 1:
            raise ValueError(f"num_frames={num_frames}: a video needs at least one frame.")
        num_samples = num_frames / self.frame_sample_rate
        if training:
            low, high = self.train_speed_range
            num_samples *= low + (high - low) * torch.rand(()).item()
        num_samples = max(1, math.ceil(num_samples))
        if num_samples > self.max_frames:
            _warn_long_video(num_frames, num_samples, self.max_frames)
        num_samples = min(num_samples, num_frames, self.max_frames)
        # Integer segment bounds: each segment holds >= 1 frame, so indices strictly increase.
        bounds = np.floor(np.arange(num_samples + 1) * num_frames / num_samples).astype(np.int64)
        starts, widths = bounds[:-1], bounds[1:] - bounds[:-1]
        offsets = torch.rand(num_samples).numpy() if training else np.full(num_samples, 0.5)
        return starts + np.minimum(np.floor(offsets * widths).astype(np.int64), widths - 1)

    def _crop_box(self, height: int, width: int, training: bool) -> tuple[int, int, int]:
        """Square crop (top, left, side) in original pixels: the centre crop of a `size` resize at
        evaluation; a random position and scale at training."""
        side = min(height, width) * self.crop_size / self.size
        if training:
            side *= math.sqrt(self.train_min_scale + (1 - self.train_min_scale) * torch.rand(()).item())
        side = max(1, int(round(side)))
        if training:
            top = int(torch.randint(0, height - side + 1, ()).item())
            left = int(torch.randint(0, width - side + 1, ()).item())
        else:
            top, left = (height - side) // 2, (width - side) // 2
        return top, left, side

    def _process_video(self, frames: torch.Tensor, training: bool, normalize: bool = True) -> torch.Tensor:
        top, left, side = self._crop_box(frames.shape[2], frames.shape[3], training)
        crop = frames[:, :, top : top + side, left : left + side]
        if side != self.crop_size:
            # On uint8 frames in channels-last layout: torch's vectorised path, 2x the float resize (bench_loader.py).
            crop = F.interpolate(
                crop.contiguous(memory_format=torch.channels_last),
                size=(self.crop_size, self.crop_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        if not normalize:
            return crop.contiguous()
        return self.normalize(crop)

    def normalize(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 frames (..., 3, H, W) -> the model's float input, normalised by `image_mean` / `image_std`, on the
        frames' device. With `do_normalize=False` the processor leaves this to the caller, so that training moves a
        quarter of the bytes to the GPU and normalises there; `pixel_mask` zeroes padded frames, as the processor
        pads them."""
        std = torch.tensor(self.image_std, dtype=torch.float64) * 255.0
        scale = (1.0 / std).view(3, 1, 1).to(pixel_values.device, torch.float32)
        shift = (-torch.tensor(self.image_mean, dtype=torch.float64) * 255.0 / std).view(3, 1, 1)
        values = pixel_values.to(torch.float32, memory_format=torch.contiguous_format)
        # (x - mean) / std as one multiply-add, in place: a long clip holds one float copy of its frames, not three.
        values = values.mul_(scale).add_(shift.to(pixel_values.device, torch.float32))
        if pixel_mask is not None and not bool(pixel_mask.all()):
            values[pixel_mask == 0] = 0
        return values

    def __call__(self, videos, **kwargs) -> BatchFeature:
        return self.preprocess(videos, **kwargs)

    def preprocess(
        self,
        videos,
        training: bool = False,
        do_sample_frames: bool = True,
        return_tensors="pt",
        do_normalize: bool = True,
        **kwargs,
    ) -> BatchFeature:
        """`videos`: one video or a list of videos; a video is a uint8 (T, H, W, 3) array or tensor,
        or a list of PIL images. With `do_sample_frames=False` the frames are taken as already sampled
        (by `sample_frame_indices`), and only the `max_frames` cap applies. With `do_normalize=False`,
        `pixel_values` stay uint8 (cropped and resized) for `normalize` to finish on another device."""
        if kwargs:
            raise TypeError(f"FlaLlmVideoProcessor got unexpected arguments: {sorted(kwargs)}.")
        if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim not in (4, 5):
            raise ValueError(
                f"video 0 has shape {tuple(videos.shape)}: expected (frames, height, width, 3) RGB frames "
                "(or a batch of such videos). Convert grayscale or RGBA frames to RGB first."
            )
        if _is_single_video(videos):
            videos = [videos]
        if not isinstance(videos, (list, tuple)) and not (torch.is_tensor(videos) or isinstance(videos, np.ndarray)):
            raise ValueError(f"videos has type {type(videos).__name__}: expected a video or a list of videos.")
        if len(videos) == 0:
            raise ValueError("videos is empty: expected at least one video.")
        processed = []
        for index, video in enumerate(videos):
            frames = _video_to_tensor(video, index)
            if do_sample_frames:
                frames = frames[torch.from_numpy(self.sample_frame_indices(frames.shape[0], training))]
            elif frames.shape[0] > self.max_frames:
                keep = np.linspace(0, frames.shape[0] - 1, self.max_frames).round().astype(np.int64)
                frames = frames[torch.from_numpy(keep)]
            processed.append(self._process_video(frames, training, do_normalize))
        max_len = max(video.shape[0] for video in processed)
        dtype = torch.float32 if do_normalize else torch.uint8
        pixel_values = torch.zeros(len(processed), max_len, 3, self.crop_size, self.crop_size, dtype=dtype)
        pixel_mask = torch.zeros(len(processed), max_len, dtype=torch.long)
        for i, video in enumerate(processed):
            pixel_values[i, : video.shape[0]] = video
            pixel_mask[i, : video.shape[0]] = 1
        return BatchFeature({"pixel_values": pixel_values, "pixel_mask": pixel_mask}, tensor_type=return_tensors)


__all__ = ["FlaLlmVideoProcessor"]
