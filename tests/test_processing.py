"""FlaLlmVideoProcessor and FlaLlmProcessor: what the model sees of a video and a sentence."""

import numpy as np
import pytest
import torch
from modeling_fixtures import random_video, tiny_processor, tiny_tokenizer
from PIL import Image
from transformers import AutoProcessor

from modeling_flallm import FlaLlmProcessor, FlaLlmVideoProcessor


def test_eval_sampling_keeps_one_frame_in_four_deterministically():
    processor = FlaLlmVideoProcessor(frame_sample_rate=4)
    indices = processor.sample_frame_indices(100)
    assert len(indices) == 25
    assert np.all(np.diff(indices) == 4)
    assert np.array_equal(indices, processor.sample_frame_indices(100))
    assert processor.sample_frame_indices(3).tolist() == [1]  # shorter than the rate: one frame


def test_train_sampling_jitters_offsets_and_speed_within_bounds():
    processor = FlaLlmVideoProcessor(frame_sample_rate=4, train_speed_range=(0.8, 1.2))
    torch.manual_seed(0)
    draws = [processor.sample_frame_indices(100, training=True) for _ in range(30)]
    assert all(20 <= len(d) <= 30 for d in draws)
    assert all(np.all(np.diff(d) > 0) and d.min() >= 0 and d.max() < 100 for d in draws)
    assert len({tuple(d) for d in draws}) > 20
    torch.manual_seed(0)
    assert all(np.array_equal(a, processor.sample_frame_indices(100, training=True)) for a in draws[:5])


def test_max_frames_caps_long_videos():
    processor = FlaLlmVideoProcessor(frame_sample_rate=1, size=16, crop_size=16, max_frames=10)
    out = processor(random_video(40, 16, 16))
    assert out["pixel_values"].shape == (1, 10, 3, 16, 16)
    presampled = processor(random_video(40, 16, 16), do_sample_frames=False)
    assert presampled["pixel_values"].shape[1] == 10


def test_eval_output_is_a_normalised_centre_crop():
    processor = FlaLlmVideoProcessor(frame_sample_rate=1, size=32, crop_size=32)
    video = np.zeros((2, 40, 32, 3), dtype=np.uint8)
    video[:, 4:36] = 255  # white centre square, black bands above and below
    pixel_values = processor(video)["pixel_values"]
    white = (torch.ones(3) - torch.tensor(processor.image_mean)) / torch.tensor(processor.image_std)
    torch.testing.assert_close(pixel_values[0, 0, :, 16, 16], white)
    torch.testing.assert_close(pixel_values[0, :, :, 0, 0], white.expand(2, 3))


def test_numpy_tensor_and_pil_inputs_give_the_same_result():
    processor = FlaLlmVideoProcessor(frame_sample_rate=2, size=36, crop_size=32)
    video = random_video(9, 40, 48)
    from_numpy = processor(video)["pixel_values"]
    from_tensor = processor(torch.from_numpy(video))["pixel_values"]
    from_pil = processor([Image.fromarray(frame) for frame in video])["pixel_values"]
    assert from_numpy.shape == (1, 5, 3, 32, 32)
    torch.testing.assert_close(from_numpy, from_tensor)
    torch.testing.assert_close(from_numpy, from_pil)


def test_batches_are_padded_with_a_mask():
    processor = FlaLlmVideoProcessor(frame_sample_rate=1, size=16, crop_size=16)
    out = processor([random_video(5, 16, 16), random_video(2, 16, 16, seed=1)])
    assert out["pixel_values"].shape == (2, 5, 3, 16, 16)
    assert out["pixel_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert torch.all(out["pixel_values"][1, 2:] == 0)
    alone = processor(random_video(2, 16, 16, seed=1))["pixel_values"][0]
    torch.testing.assert_close(out["pixel_values"][1, :2], alone)


def test_training_crops_vary_but_keep_the_output_shape():
    processor = FlaLlmVideoProcessor(frame_sample_rate=1, size=40, crop_size=32, train_min_scale=0.5)
    video = random_video(4, 48, 64)
    torch.manual_seed(0)
    draws = [processor(video, training=True)["pixel_values"] for _ in range(5)]
    assert all(d.shape[2:] == (3, 32, 32) for d in draws)
    assert not all(torch.equal(draws[0], d) for d in draws[1:])


@pytest.mark.parametrize(
    "video, message",
    [
        (np.zeros((0, 8, 8, 3), dtype=np.uint8), "no frames"),
        (np.zeros((4, 8, 8), dtype=np.uint8), r"video 0 has shape \(4, 8, 8\): expected \(frames, height, width, 3\)"),
        (np.zeros((4, 8, 8, 4), dtype=np.uint8), "RGB"),
        (np.zeros((4, 8, 8, 3), dtype=np.float32), "uint8"),
        ([], "empty"),
        ("clip.mp4", "expected a video or a list of videos"),
    ],
)
def test_bad_videos_raise_a_clear_error(video, message):
    with pytest.raises(ValueError, match=message):
        FlaLlmVideoProcessor(size=8, crop_size=8)(video)


def test_invalid_processor_settings_are_rejected():
    with pytest.raises(ValueError, match="frame_sample_rate"):
        FlaLlmVideoProcessor(frame_sample_rate=0)
    with pytest.raises(ValueError, match="crop_size"):
        FlaLlmVideoProcessor(size=100, crop_size=224)


def test_labels_end_with_eos_and_ignore_padding():
    processor = tiny_processor()
    labels = processor(text=["und nun die wettervorhersage", "regen"])["labels"]
    eos, tokenizer = processor.tokenizer.eos_token_id, processor.tokenizer
    assert labels[0].tolist()[-1] == eos and labels[1].tolist()[:2] == [tokenizer.convert_tokens_to_ids("regen"), eos]
    assert labels[1, 2:].eq(-100).all()
    assert processor.batch_decode(labels.clamp(min=0)) == ["und nun die wettervorhersage", "regen"]


def test_processor_round_trips_through_save_pretrained(tmp_path):
    processor = tiny_processor(frame_sample_rate=3)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, FlaLlmProcessor)
    assert loaded.video_processor.to_dict() == processor.video_processor.to_dict()
    video, text = random_video(10), ["für morgen regen"]
    expected = processor(videos=video, text=text)
    actual = loaded(videos=video, text=text)
    for key in ("pixel_values", "pixel_mask", "labels"):
        torch.testing.assert_close(actual[key], expected[key])
    FlaLlmVideoProcessor.from_pretrained(tmp_path)  # the video processor loads on its own too


def test_processor_rejects_a_wrong_video_processor():
    with pytest.raises(TypeError, match="FlaLlmVideoProcessor"):
        FlaLlmProcessor(video_processor=object(), tokenizer=tiny_tokenizer())


@pytest.mark.parametrize("training", [False, True])
def test_uint8_frames_normalised_later_equal_the_processors_own_output(training):
    """Issue 15: training moves uint8 frames to the device and normalises them there; the model sees the same input."""
    video_processor = FlaLlmVideoProcessor(frame_sample_rate=2, size=24, crop_size=20)
    videos = [
        np.random.default_rng(seed).integers(0, 256, (n, 30, 26, 3), dtype=np.uint8) for seed, n in ((0, 9), (1, 4))
    ]
    torch.manual_seed(3)
    reference = video_processor(videos, training=training)
    torch.manual_seed(3)
    raw = video_processor(videos, training=training, do_normalize=False)
    assert raw["pixel_values"].dtype == torch.uint8 and torch.equal(raw["pixel_mask"], reference["pixel_mask"])
    assert torch.equal(video_processor.normalize(raw["pixel_values"], raw["pixel_mask"]), reference["pixel_values"])
