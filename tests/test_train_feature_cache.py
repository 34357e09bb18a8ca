"""Stage-2 feature cache: keyed by the encoder's weights and preprocessing, and equal to live features."""

import threading

import pytest
import torch
from _train_fixtures import (
    single_thread,  # noqa: F401  (autouse)
    tiny_corpus,
)
from modeling_fixtures import tiny_model, tiny_processor

from data_builders import SignTranslationCollator
from train import feature_cache
from train.feature_cache import FeatureCollator, encoder_fingerprint, load_or_compute


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return tiny_corpus(tmp_path_factory.mktemp("data"), num_train=6)


@pytest.fixture
def model():
    model = tiny_model(freeze="visual_encoder")
    # Non-trivial BatchNorm statistics, as a trained stage-1 encoder has.
    model.visual_encoder.temporal.norm.running_mean.uniform_(-0.5, 0.5)
    return model.eval()


def test_fingerprint_follows_weights_buffers_and_preprocessing(model):
    processor = tiny_processor(frame_sample_rate=2)
    reference = encoder_fingerprint(model, processor.video_processor)
    assert encoder_fingerprint(model, processor.video_processor) == reference
    model.language_model.lm_head.weight.data.add_(1.0)  # not part of the encoder: same features
    model.adapter.linear_1.bias.data.add_(1.0)
    assert encoder_fingerprint(model, processor.video_processor) == reference
    model.visual_encoder.temporal.norm.running_var.add_(0.1)  # a buffer of the encoder
    changed = encoder_fingerprint(model, processor.video_processor)
    assert changed != reference
    processor.video_processor.crop_size = 24
    assert encoder_fingerprint(model, processor.video_processor) != changed


def test_cache_is_reused_and_a_changed_encoder_gets_a_new_one(tmp_path, model, corpus, monkeypatch):
    processor = tiny_processor(frame_sample_rate=2)
    collate = SignTranslationCollator(processor, training=False)
    train = corpus["train"]
    cached = load_or_compute(model, processor.video_processor, train, "train", collate, tmp_path, 4, "cpu")
    assert len(cached) == len(train) and list(cached["id"]) == list(train["id"])
    first_files = sorted(tmp_path.rglob("*.arrow"))
    assert [path.name for path in first_files] == ["part-00000-of-00001.arrow"]
    assert (first_files[0].parent / "done.json").is_file()

    def no_recompute(*args, **kwargs):
        raise AssertionError("features were recomputed although the encoder did not change")

    monkeypatch.setattr(feature_cache, "compute_features", no_recompute)
    again = load_or_compute(model, processor.video_processor, train, "train", collate, tmp_path, 4, "cpu")
    assert torch.equal(torch.as_tensor(again[0]["features"]), torch.as_tensor(cached[0]["features"]))
    monkeypatch.undo()

    with torch.no_grad():
        model.visual_encoder.backbone.embedder.embedder.convolution.weight.mul_(1.5)  # another stage-1 encoder
    changed = load_or_compute(model, processor.video_processor, train, "train", collate, tmp_path, 4, "cpu")
    files = sorted(tmp_path.rglob("*.arrow"))
    assert len(files) == 2 and files[0].parents[1] != files[1].parents[1]  # a new encoder folder, the old one untouched
    assert not torch.equal(torch.as_tensor(changed[0]["features"]), torch.as_tensor(cached[0]["features"]))
    assert not list(tmp_path.rglob(".tmp-*"))


def test_cached_features_give_the_same_loss_and_translation_as_videos(tmp_path, model, corpus):
    processor = tiny_processor(frame_sample_rate=2)
    collate = SignTranslationCollator(processor, training=False)
    train = corpus["train"]
    cached = load_or_compute(model, processor.video_processor, train, "train", collate, tmp_path, 4, "cpu")
    videos = collate([train[i] for i in range(4)])
    features = FeatureCollator(processor)([cached[i] for i in range(4)])
    assert torch.equal(features["labels"], videos["labels"])
    assert torch.equal(features["visual_mask"], videos["pixel_mask"])
    with torch.no_grad():
        from_videos = model(
            pixel_values=videos["pixel_values"], pixel_mask=videos["pixel_mask"], labels=videos["labels"]
        )
        from_cache = model(**features)
        torch.testing.assert_close(from_cache.loss, from_videos.loss, rtol=1e-5, atol=1e-6)
        generated = model.generate(
            visual_features=features["visual_features"],
            visual_mask=features["visual_mask"],
            num_beams=2,
            max_new_tokens=5,
        )
        expected = model.generate(
            pixel_values=videos["pixel_values"], pixel_mask=videos["pixel_mask"], num_beams=2, max_new_tokens=5
        )
    assert torch.equal(generated, expected)


class _Rank:
    """What load_or_compute needs of an Accelerator: this process's index among `num_processes`."""

    def __init__(self, index: int, num_processes: int):
        self.process_index, self.num_processes = index, num_processes
        self.is_main_process = index == 0


def test_processes_build_one_part_each_and_all_read_the_whole_cache(tmp_path, model, corpus, monkeypatch):
    processor = tiny_processor(frame_sample_rate=2)
    collate = SignTranslationCollator(processor, training=False)
    train = corpus["train"]
    single = load_or_compute(model, processor.video_processor, train, "train", collate, tmp_path / "one", 4, "cpu")
    wait = feature_cache._wait_for
    monkeypatch.setattr(feature_cache, "_wait_for", lambda path, what, poll_seconds=2.0: wait(path, what, 0.05))
    results = {}

    def run(index):  # the non-main process starts first and must wait for the main one
        results[index] = load_or_compute(
            model,
            processor.video_processor,
            train,
            "train",
            collate,
            tmp_path / "two",
            4,
            "cpu",
            accelerator=_Rank(index, 2),
        )

    threads = [threading.Thread(target=run, args=(index,)) for index in (1, 0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    parts = sorted(path.name for path in (tmp_path / "two").rglob("part-*.arrow"))
    assert parts == ["part-00000-of-00002.arrow", "part-00001-of-00002.arrow"]
    for index in (0, 1):
        assert list(results[index]["id"]) == list(train["id"])
        for row in range(len(train)):
            torch.testing.assert_close(
                torch.as_tensor(results[index][row]["features"]), torch.as_tensor(single[row]["features"])
            )
