"""The packaged evaluate metric agrees with sacrebleu called directly, and ROUGE-L is the documented one."""

import pytest
from sacrebleu.metrics import BLEU, CHRF

from train.metrics import METRIC_DIR, load_metric

PREDICTIONS = [
    "am tag regen im norden",
    "es wird kalt und stürmisch",
    "morgen scheint die sonne",
    "im süden gewitter",
]
REFERENCES = [
    "am tag regen im süden",
    "morgen wird es kalt und stürmisch",
    "morgen scheint überall die sonne",
    "im süden gibt es gewitter",
]


@pytest.fixture(scope="module")
def metric():
    return load_metric()


def test_metric_file_ships_inside_the_package():
    assert (METRIC_DIR / "slt_metric.py").is_file()
    assert (METRIC_DIR / "__init__.py").is_file()


def test_bleu_and_chrf_match_sacrebleu_exactly(metric):
    result = metric.compute(predictions=PREDICTIONS, references=REFERENCES, language="de")
    for n in range(1, 5):
        bleu = BLEU(max_ngram_order=n)
        assert result[f"bleu{n}"] == bleu.corpus_score(PREDICTIONS, [REFERENCES]).score
    assert result["signature"] == str(bleu.get_signature())
    assert "tok:13a" in result["signature"]
    chrf = CHRF()
    assert result["chrf"] == chrf.corpus_score(PREDICTIONS, [REFERENCES]).score
    assert result["chrf_signature"] == str(chrf.get_signature())
    assert result["bleu1"] > result["bleu2"] > result["bleu3"] > result["bleu4"] > 0


def test_chinese_is_scored_per_character(metric):
    predictions = ["今天天气很好", "我们明天去北京"]
    references = ["今天天气不错", "明天我们去北京"]
    result = metric.compute(predictions=predictions, references=references, language="zh")
    for n in range(1, 5):
        expected = BLEU(tokenize="zh", max_ngram_order=n).corpus_score(predictions, [references]).score
        assert result[f"bleu{n}"] == expected
    assert "tok:zh" in result["signature"]
    # Whole sentences as single 13a tokens would share no unigram at all.
    assert BLEU(max_ngram_order=1).corpus_score(predictions, [references]).score == 0
    assert result["bleu1"] > 50
    # ROUGE-L over characters: LCS("今天天气很好", "今天天气不错") = 4 of 6 on both sides.
    first = metric.compute(predictions=predictions[:1], references=references[:1], language="zh-CN")
    assert first["rougeL"] == pytest.approx(100 * 4 / 6)


def test_rouge_l_is_the_sentence_level_f_beta_1_2(metric):
    # LCS("a c e f", "a b c d e") = 3: precision 3/4, recall 3/5.
    result = metric.compute(predictions=["a c e f", "x"], references=["a b c d e", "y"])
    p, r = 3 / 4, 3 / 5
    f_coco = (1 + 1.2**2) * p * r / (r + 1.2**2 * p)
    assert result["rougeL"] == pytest.approx(100 * f_coco / 2)
    assert result["rougeL_f1"] == pytest.approx(100 * (2 * p * r / (p + r)) / 2)
    assert "lcs-f-beta:1.2" in result["rouge_signature"]
    assert "rouge-score" in result["rouge_signature"]


def test_rouge_l_keeps_non_ascii_words(metric):
    # rouge-score's default tokenizer maps "über" and "ober" both to "ber"; ours must not.
    assert metric.compute(predictions=["über"], references=["ober"])["rougeL"] == 0
    assert metric.compute(predictions=["grüße"], references=["grüße"])["rougeL"] == pytest.approx(100)


def test_perfect_translation_scores_100(metric):
    result = metric.compute(predictions=REFERENCES, references=REFERENCES, language="de")
    for key in ("bleu1", "bleu2", "bleu3", "bleu4", "rougeL", "chrf"):
        assert result[key] == pytest.approx(100)


def test_explicit_tokenizer_overrides_language(metric):
    result = metric.compute(predictions=PREDICTIONS, references=REFERENCES, language="de", tokenize="char")
    assert "tok:char" in result["signature"]
    assert result["bleu4"] == BLEU(tokenize="char").corpus_score(PREDICTIONS, [REFERENCES]).score


def test_empty_input_is_rejected(metric):
    with pytest.raises(ValueError, match="empty"):
        metric.compute(predictions=[], references=[])
