"""`flallm pretrain-lm`: the offline LM for stage 2, from a corpus in its official layout or a text file."""

import json

import pytest
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from data_builders.testing import write_phoenix14t
from train.cli import main

TINY = (
    "{d_model: 32, encoder_layers: 1, decoder_layers: 1, encoder_attention_heads: 2, decoder_attention_heads: 2, "
    "encoder_ffn_dim: 64, decoder_ffn_dim: 64}"
)


def test_pretrain_lm_on_a_phoenix_release_gets_its_language_code_and_a_held_out_loss(tmp_path, capsys):
    release = write_phoenix14t(tmp_path / "raw")
    output = tmp_path / "lm-de"
    argv = [
        "pretrain-lm",
        "--texts",
        "phoenix14t",
        "--data-dir",
        str(release),
        "--output-dir",
        str(output),
        "--vocab-size",
        "300",
        "--model",
        TINY,
        "--epochs",
        "2",
        "--batch-size",
        "2",
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_texts"] == 3 and summary["validation_loss_after"] is not None and summary["steps"] == 4
    tokenizer = AutoTokenizer.from_pretrained(output)
    assert tokenizer.mask_token == "<mask>"
    assert tokenizer.convert_ids_to_tokens(tokenizer("regen")["input_ids"][-2:]) == ["</s>", "de_DE"]
    model = AutoModelForSeq2SeqLM.from_pretrained(output)
    assert model.config.vocab_size >= len(tokenizer) and model.config.d_model == 32
    assert not list(tmp_path.glob(".lm-de*"))  # the interim tokenizer is gone once the LM is saved
    mtime = (output / "model.safetensors").stat().st_mtime_ns
    assert main(argv) == 0  # a rerun keeps the finished LM
    assert (output / "model.safetensors").stat().st_mtime_ns == mtime


def test_pretrain_lm_on_a_text_file_and_bad_input(tmp_path, capsys):
    texts = tmp_path / "sentences.txt"
    texts.write_text("\n".join(f"am tag {i} regen und wind" for i in range(60)) + "\n", encoding="utf-8")
    assert (
        main(
            [
                "pretrain-lm",
                "--texts",
                str(texts),
                "--output-dir",
                str(tmp_path / "lm"),
                "--language-code",
                "de_DE",
                "--model-type",
                "bpe",
                "--vocab-size",
                "300",
                "--model",
                TINY,
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["num_texts"] == 59  # one line in 50 held out
    (tmp_path / "one.txt").write_text("nur ein satz\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="one.txt: expected a text file with one sentence a line, got 1 line"):
        main(["pretrain-lm", "--texts", str(tmp_path / "one.txt"), "--output-dir", str(tmp_path / "lm2")])
    with pytest.raises(SystemExit, match="--model 'oops': expected a YAML map"):
        main(["pretrain-lm", "--texts", str(texts), "--output-dir", str(tmp_path / "lm3"), "--model", "oops"])
