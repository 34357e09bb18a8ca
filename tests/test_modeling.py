"""FlaLlmConfig and FlaLlmForSignTranslation: both stages, both kinds of language model."""

import os
import subprocess
import sys
import sysconfig

import pytest
import torch
import torch.nn.functional as F
from modeling_fixtures import (
    TINY_VISION,
    tiny_config,
    tiny_llama_config,
    tiny_mbart_config,
    tiny_model,
    tiny_processor,
)
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageTextToText,
    AutoProcessor,
    ResNetConfig,
    ResNetForImageClassification,
)

from modeling_flallm import FlaLlmConfig, FlaLlmForSignTranslation

TEXT_CONFIGS = {"encoder-decoder": tiny_mbart_config, "decoder-only": tiny_llama_config}


def batch(lengths=(6, 4), size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(len(lengths), max(lengths), 3, size, size, generator=generator)
    pixel_mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, length in enumerate(lengths):
        pixel_mask[i, :length] = 1
        pixel_values[i, length:] = 0
    return pixel_values, pixel_mask


LABELS = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, -100, -100]])


# ---------------------------------------------------------------------------------------------
# Config


def test_config_defaults_follow_the_paper():
    config = FlaLlmConfig()
    assert config.vision_config.model_type == "resnet"
    assert config.vision_config.hidden_sizes == [64, 128, 256, 512] and config.vision_config.depths == [2, 2, 2, 2]
    text = config.text_config
    assert (text.encoder_layers, text.decoder_layers, text.d_model) == (3, 3, 512)
    assert (text.encoder_attention_heads, text.encoder_ffn_dim) == (8, 2048)
    assert config.frame_sample_rate == 4 and config.label_smoothing == 0.2
    assert config.temporal_kernel_size % 2 == 1
    assert config.is_encoder_decoder


def test_config_round_trips_through_save_pretrained(tmp_path):
    config = tiny_config(tiny_llama_config(), frame_sample_rate=2, freeze="backbone")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, FlaLlmConfig)
    assert loaded.text_config.model_type == "llama" and not loaded.is_encoder_decoder
    assert loaded.frame_sample_rate == 2 and loaded.freeze == "backbone"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"temporal_kernel_size": 4}, "temporal_kernel_size"),
        ({"frame_sample_rate": 0}, "frame_sample_rate"),
        ({"adapter_input": "gloss"}, "adapter_input"),
        ({"freeze": "everything"}, "freeze"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"text_config": {"model_type": "vit"}}, "text_config"),
        ({"vision_config": {"model_type": "vit"}}, "vision_config"),
    ],
)
def test_config_rejects_invalid_values_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        FlaLlmConfig(**kwargs)


# ---------------------------------------------------------------------------------------------
# Forward


@pytest.mark.parametrize("kind", TEXT_CONFIGS)
def test_forward_returns_label_smoothed_loss_ignoring_padding(kind):
    model = tiny_model(TEXT_CONFIGS[kind]()).eval()
    pixel_values, pixel_mask = batch()
    out = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS)
    assert out.logits.shape == (2, LABELS.shape[1], model.config.text_config.vocab_size)
    expected = F.cross_entropy(
        out.logits.reshape(-1, out.logits.shape[-1]), LABELS.reshape(-1), ignore_index=-100, label_smoothing=0.2
    )
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    assert model.visual_encoder.backbone.embedder.embedder.convolution.weight.grad is not None


def test_precomputed_visual_features_give_the_same_loss():
    model = tiny_model().eval()
    pixel_values, pixel_mask = batch()
    features, mask = model.get_visual_features(pixel_values, pixel_mask)
    assert features.shape == (2, 6, model.config.temporal_hidden_size)
    assert torch.all(features[1, 4:] == 0)
    from_pixels = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS)
    from_features = model(visual_features=features, visual_mask=mask, labels=LABELS)
    torch.testing.assert_close(from_pixels.logits, from_features.logits)


def test_all_real_frames_go_through_the_cnn_in_one_call():
    model = tiny_model().eval()
    calls = []
    model.visual_encoder.backbone.register_forward_hook(lambda module, args, kwargs_out: calls.append(kwargs_out))
    seen = []
    model.visual_encoder.backbone.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["pixel_values"].shape[0]), with_kwargs=True
    )
    pixel_values, pixel_mask = batch(lengths=(6, 4, 1))
    model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS[:1].expand(3, -1))
    assert seen == [11]


@pytest.mark.parametrize("kind", TEXT_CONFIGS)
def test_padding_does_not_change_a_videos_logits_or_translation(kind):
    model = tiny_model(TEXT_CONFIGS[kind]()).eval()
    pixel_values, pixel_mask = batch(lengths=(6, 3))
    batched = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS)
    alone = model(pixel_values=pixel_values[1:, :3], pixel_mask=pixel_mask[1:, :3], labels=LABELS[1:, :3])
    torch.testing.assert_close(batched.logits[1, :3], alone.logits[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched.loss.new_tensor(alone.loss.item()), alone.loss)

    generated = model.generate(pixel_values=pixel_values, pixel_mask=pixel_mask, num_beams=3, max_new_tokens=6)
    generated_alone = model.generate(
        pixel_values=pixel_values[1:, :3], pixel_mask=pixel_mask[1:, :3], num_beams=3, max_new_tokens=6
    )
    length = generated_alone.shape[1]
    assert generated[1, :length].tolist() == generated_alone[0].tolist()
    assert all(token == model.config.text_config.pad_token_id for token in generated[1, length:].tolist())


def test_decoder_only_generate_returns_only_new_tokens():
    model = tiny_model(tiny_llama_config()).eval()
    pixel_values, pixel_mask = batch(lengths=(6, 3))
    generated = model.generate(pixel_values=pixel_values, pixel_mask=pixel_mask, num_beams=2, max_new_tokens=4)
    assert generated.shape == (2, 4) or generated.shape[1] <= 4


def test_training_uses_beam_search_with_five_beams_by_default(tmp_path):
    model = tiny_model()
    assert model.generation_config.num_beams == 5
    model.save_pretrained(tmp_path)
    assert FlaLlmForSignTranslation.from_pretrained(tmp_path).generation_config.num_beams == 5


@pytest.mark.parametrize(
    "pixel_values, pixel_mask, message",
    [
        (torch.randn(2, 6, 32, 32), None, "pixel_values must be a float tensor of shape"),
        (torch.randn(2, 6, 1, 32, 32), None, r"\(batch, frames, 3, height, width\)"),
        (torch.randn(1, 0, 3, 32, 32), torch.zeros(1, 0, dtype=torch.long), "no frames"),
        (torch.randn(2, 4, 3, 32, 32), torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0]]), r"video\(s\) \[1\].*no frames"),
        (torch.randn(2, 6, 3, 32, 32), torch.ones(2, 5, dtype=torch.long), r"pixel_mask has shape \(2, 5\)"),
        (torch.randn(1, 70, 3, 8, 8), None, "max_frames"),
    ],
)
def test_bad_video_inputs_raise_a_clear_value_error(pixel_values, pixel_mask, message):
    model = tiny_model().eval()
    with pytest.raises(ValueError, match=message):
        model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS[:1])


# ---------------------------------------------------------------------------------------------
# Saving, Auto classes, remote code


def test_auto_classes_load_the_full_model_and_processor(tmp_path):
    model = tiny_model().eval()
    processor = tiny_processor()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    pixel_values, pixel_mask = batch()
    expected = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).logits
    for auto_class in (AutoModel, AutoModelForImageTextToText):
        loaded = auto_class.from_pretrained(tmp_path).eval()
        assert type(loaded) is FlaLlmForSignTranslation
        torch.testing.assert_close(
            loaded(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).logits, expected
        )
    assert type(AutoProcessor.from_pretrained(tmp_path)).__name__ == "FlaLlmProcessor"


def test_checkpoint_loads_with_trust_remote_code_without_the_package(tmp_path):
    model = tiny_model().eval()
    model.save_pretrained(tmp_path / "ckpt")
    tiny_processor().save_pretrained(tmp_path / "ckpt")
    for name in ("configuration_flallm.py", "modeling_flallm.py"):
        assert (tmp_path / "ckpt" / name).exists()
    pixel_values, pixel_mask = batch()
    torch.save({"pixel_values": pixel_values, "pixel_mask": pixel_mask, "labels": LABELS}, tmp_path / "inputs.pt")
    expected = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).logits
    torch.save(expected, tmp_path / "expected.pt")
    # -S skips site-packages' .pth files, which is where the editable install of this package lives.
    script = f"""
import sys
sys.path.append({sysconfig.get_paths()["purelib"]!r})
import torch
try:
    import modeling_flallm
    raise SystemExit("modeling_flallm should not be importable here")
except ImportError:
    pass
from transformers import AutoModel, AutoProcessor
model = AutoModel.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained({str(tmp_path / "ckpt")!r}, trust_remote_code=True)
inputs = torch.load({str(tmp_path / "inputs.pt")!r})
logits = model(**inputs).logits
torch.testing.assert_close(logits, torch.load({str(tmp_path / "expected.pt")!r}))
print(type(model).__name__, type(processor).__name__)
"""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"))
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FlaLlmForSignTranslation FlaLlmProcessor" in result.stdout


# ---------------------------------------------------------------------------------------------
# Stage 2, ImageNet initialisation, LoRA


def train_steps(model, steps=3):
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for step in range(steps):
        pixel_values, pixel_mask = batch(seed=step)
        model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("kind", TEXT_CONFIGS)
def test_stage2_from_stage1_keeps_and_freezes_the_visual_encoder(tmp_path, kind):
    stage1 = tiny_model(seed=0)
    train_steps(stage1, steps=2)  # moves weights and BatchNorm statistics away from their init
    stage1.save_pretrained(tmp_path / "stage1")
    language_model = tiny_model(TEXT_CONFIGS[kind](), seed=1).language_model
    stage2 = FlaLlmForSignTranslation.from_stage1(tmp_path / "stage1", language_model=language_model)
    assert stage2.config.stage == "llm_fine_tuning" and stage2.config.freeze == "visual_encoder"

    encoder_before = {k: v.clone() for k, v in stage2.visual_encoder.state_dict().items()}
    for key, value in stage1.visual_encoder.state_dict().items():
        assert torch.equal(encoder_before[key], value), key
    assert any("running_mean" in key for key in encoder_before)
    lm_before = {k: v.clone() for k, v in stage2.language_model.state_dict().items()}
    adapter_before = {k: v.clone() for k, v in stage2.adapter.state_dict().items()}

    train_steps(stage2)
    for key, value in stage2.visual_encoder.state_dict().items():
        assert torch.equal(encoder_before[key], value), f"{key} changed in the frozen visual encoder"
    assert any(not torch.equal(lm_before[k], v) for k, v in stage2.language_model.state_dict().items())
    assert any(not torch.equal(adapter_before[k], v) for k, v in stage2.adapter.state_dict().items())
    assert all(not p.requires_grad for p in stage2.visual_encoder.parameters())

    stage2.save_pretrained(tmp_path / "stage2")
    reloaded = AutoModel.from_pretrained(tmp_path / "stage2")
    assert reloaded.config.freeze == "visual_encoder"
    assert all(torch.equal(v, reloaded.state_dict()[k]) for k, v in stage2.state_dict().items())


def test_backbone_starts_from_a_pretrained_resnet_through_transformers(tmp_path):
    torch.manual_seed(3)
    classifier = ResNetForImageClassification(ResNetConfig(**TINY_VISION, num_labels=10))
    classifier.save_pretrained(tmp_path / "resnet")
    model = FlaLlmForSignTranslation.from_vision_pretrained(str(tmp_path / "resnet"), config=tiny_config())
    for key, value in classifier.resnet.state_dict().items():
        assert torch.equal(model.visual_encoder.backbone.state_dict()[key], value), key
    with pytest.raises(OSError):
        FlaLlmForSignTranslation.from_vision_pretrained(
            "microsoft/resnet-18-does-not-exist-offline", config=tiny_config()
        )


def test_lora_adapters_train_save_load_and_merge(tmp_path):
    model = tiny_model(use_lora=True, lora_rank=4, lora_target_modules=["q_proj", "v_proj"]).eval()
    trainable = {name for name, p in model.language_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    with torch.no_grad():  # LoRA B starts at zero: give the adapter an effect to preserve
        for name, parameter in model.language_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    pixel_values, pixel_mask = batch()
    expected = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).logits

    model.save_pretrained(tmp_path / "full")
    reloaded = AutoModel.from_pretrained(tmp_path / "full").eval()
    torch.testing.assert_close(
        reloaded(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).logits, expected
    )

    model.save_lora_adapter(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    fresh = tiny_model(use_lora=True, lora_rank=4, lora_target_modules=["q_proj", "v_proj"]).eval()
    fresh.load_state_dict({k: v for k, v in model.state_dict().items() if "lora_" not in k}, strict=False)
    fresh.load_lora_adapter(tmp_path / "adapter")
    torch.testing.assert_close(fresh(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).logits, expected)

    generated = model.generate(pixel_values=pixel_values, pixel_mask=pixel_mask, num_beams=2, max_new_tokens=4)
    model.merge_lora()
    assert not any("lora_" in name for name, _ in model.named_parameters())
    assert torch.equal(
        model.generate(pixel_values=pixel_values, pixel_mask=pixel_mask, num_beams=2, max_new_tokens=4), generated
    )
    torch.testing.assert_close(
        model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).logits, expected, atol=1e-5, rtol=1e-4
    )
    model.save_pretrained(tmp_path / "merged")
    assert AutoModel.from_pretrained(tmp_path / "merged").config.use_lora is False


def test_stage2_adapter_input_light_t_states_reproduce_stage1_encoder(tmp_path):
    """Paper's Table 8, third variant: the LLM-adapter reads the stage-1 Light-T encoder's states."""
    stage1 = tiny_model(seed=0)
    train_steps(stage1, steps=1)
    stage1.eval()
    stage2 = FlaLlmForSignTranslation.from_stage1(
        stage1, language_model=tiny_model(tiny_llama_config(), seed=1).language_model, adapter_input="light_t"
    ).eval()
    pixel_values, pixel_mask = batch(lengths=(6, 3))
    features, mask = stage2.get_visual_features(pixel_values, pixel_mask)

    sign_features, _ = stage1.get_visual_features(pixel_values, pixel_mask)
    embeds, _, _ = stage1._visual_embeddings(None, None, sign_features, pixel_mask)
    expected = stage1.language_model.get_encoder()(inputs_embeds=embeds, attention_mask=pixel_mask).last_hidden_state
    torch.testing.assert_close(features[0], expected[0])
    torch.testing.assert_close(features[1, :3], expected[1, :3])
    assert torch.all(features[1, 3:] == 0)

    before = {k: v.clone() for k, v in stage2.visual_encoder.state_dict().items()}
    train_steps(stage2, steps=2)
    assert all(torch.equal(before[k], v) for k, v in stage2.visual_encoder.state_dict().items())
    stage2.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.adapter_input == "light_t" and reloaded.config.light_t_config.model_type == "mbart"
    torch.testing.assert_close(
        reloaded.get_visual_features(pixel_values, pixel_mask)[0],
        stage2.eval().get_visual_features(pixel_values, pixel_mask)[0],
    )


def test_stage2_adapter_input_frame_skips_the_temporal_module():
    stage2 = FlaLlmForSignTranslation.from_stage1(
        tiny_model(seed=0), language_model=tiny_model(seed=1).language_model, adapter_input="frame"
    )
    assert stage2.visual_encoder.temporal is None
    features, _ = stage2.eval().get_visual_features(*batch())
    assert features.shape[-1] == TINY_VISION["hidden_sizes"][-1]


# ---------------------------------------------------------------------------------------------
# Training aids beyond the paper (off by default)


def test_training_aids_are_off_by_default():
    config = FlaLlmConfig()
    assert config.bag_of_words_weight == 0.0 and config.decoder_word_dropout == 0.0
    assert tiny_model().bag_of_words_head is None


@pytest.mark.parametrize("kind", TEXT_CONFIGS)
def test_bag_of_words_loss_is_added_in_training_only(kind):
    plain = tiny_model(TEXT_CONFIGS[kind](), seed=0)
    model = tiny_model(TEXT_CONFIGS[kind](), seed=0, bag_of_words_weight=0.5)
    assert model.bag_of_words_head.in_features == model.config.text_config.hidden_size
    model.load_state_dict(plain.state_dict(), strict=False)  # same weights except the new head
    pixel_values, pixel_mask = batch()
    plain.eval(), model.eval()
    torch.testing.assert_close(
        model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).loss,
        plain(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).loss,
    )
    plain.train(), model.train()
    torch.manual_seed(1)
    ce = plain(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).loss
    torch.manual_seed(1)
    out = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS)
    assert out.loss > ce
    out.loss.backward()
    assert model.bag_of_words_head.weight.grad.abs().sum() > 0


def test_bag_of_words_loss_rewards_the_tokens_of_the_sentence_and_ignores_padding_and_specials():
    model = tiny_model(bag_of_words_weight=1.0)
    vocab, hidden = model.config.text_config.vocab_size, model.config.text_config.hidden_size
    labels = torch.tensor([[5, 6, 2, -100], [7, 2, -100, -100]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    with torch.no_grad():
        model.bag_of_words_head.weight.copy_(
            torch.eye(vocab, hidden) if hidden >= vocab else torch.eye(vocab)[:, :hidden]
        )
        model.bag_of_words_head.bias.fill_(-4.0)

    def loss_for(present):
        states = torch.zeros(2, 4, hidden)
        for row, tokens in enumerate(present):
            for token in tokens:
                states[row, :, token] = 8.0  # the head's logit for `token` is 8 - 4 = 4 on every step
        return model.bag_of_words_loss(states, mask, labels)

    right, wrong = loss_for([[5, 6], [7]]), loss_for([[8, 9], [10]])
    assert right < 0.2 < wrong
    # Padded steps do not count; the end-of-sequence token (a special token) is no target.
    states = torch.zeros(2, 4, hidden)
    states[0, :3, 5] = states[0, :3, 6] = states[1, :2, 7] = 8.0
    padded = states.clone()
    padded[0, 3] = padded[1, 2:] = 50.0
    torch.testing.assert_close(
        model.bag_of_words_loss(states, mask, labels), model.bag_of_words_loss(padded, mask, labels)
    )
    torch.testing.assert_close(loss_for([[5, 6, 2], [7, 2]]), right)  # a high score for </s> costs nothing


def test_decoder_word_dropout_replaces_decoder_inputs_in_training_only():
    model = tiny_model(decoder_word_dropout=0.5)
    ids = torch.randint(4, 16, (64, 12))
    torch.manual_seed(0)
    dropped = model._drop_decoder_words(ids)
    pad = model.config.text_config.pad_token_id
    assert torch.equal(dropped[:, 0], ids[:, 0])  # the start token stays
    changed = dropped[:, 1:] != ids[:, 1:]
    assert torch.all(dropped[:, 1:][changed] == pad)
    assert 0.4 < changed.float().mean() < 0.6
    pixel_values, pixel_mask = batch()
    model.eval()
    first = model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).logits
    torch.testing.assert_close(first, model(pixel_values=pixel_values, pixel_mask=pixel_mask, labels=LABELS).logits)


def test_encoder_output_spread_is_zero_when_every_clip_reads_the_same():
    from train.diagnostics import encoder_output_spread

    pixel_values, pixel_mask = batch()
    model = tiny_model(tiny_llama_config())  # decoder-only: the spread of the visual embeddings themselves
    assert encoder_output_spread(model, {"pixel_values": pixel_values, "pixel_mask": pixel_mask}) > 0.01
    with torch.no_grad():
        model.adapter.linear_2.weight.zero_()  # the same vector for every step of every clip
    assert encoder_output_spread(model, {"pixel_values": pixel_values, "pixel_mask": pixel_mask}) < 1e-6
    assert model.training  # left as it was
