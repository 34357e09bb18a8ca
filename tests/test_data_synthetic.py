"""The synthetic sign language: deterministic, >= 100 distinct signs, a real translation problem."""

import json

import numpy as np
import pytest

from data_builders import (
    SyntheticSignLanguage,
    decode_video,
    describe_sign,
    load_sign_dataset,
    render_spec,
    split_of_sentence,
    synthetic_text,
)
from data_builders.synthetic import (
    FUNCTION_SIGNS,
    LEXICON,
    MOTION_VERBS,
    OBJECTS,
    SIGN_CODES,
    VERBS,
    _signer_pool,
    make_spec,
)

SMALL = {"num_train": 40, "num_validation": 8, "num_test": 8, "resolution": 32}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return load_sign_dataset("synthetic", cache_dir=str(tmp_path_factory.mktemp("cache")), **SMALL)


def test_same_seed_same_corpus_other_seed_other_corpus(small, tmp_path):
    again = load_sign_dataset("synthetic", cache_dir=str(tmp_path / "a"), **SMALL)
    for split in small:
        assert small[split].to_list() == again[split].to_list()
    np.testing.assert_array_equal(decode_video(small["train"][3]["video"]), decode_video(again["train"][3]["video"]))
    other = load_sign_dataset("synthetic", cache_dir=str(tmp_path / "b"), seed=1, **SMALL)
    assert other["train"]["text"] != small["train"]["text"]
    assert not np.array_equal(
        decode_video(other["train"][0]["video"], [5]), decode_video(small["train"][0]["video"], [5])
    )


def test_schema_sizes_and_frames(small):
    assert {split: len(part) for split, part in small.items()} == {"train": 40, "validation": 8, "test": 8}
    example = small["validation"][0]
    assert example["id"] == "synthetic-validation-000000" and example["fps"] == 12.0
    assert example["signer"].startswith("Signer") and example["gloss"]
    frames = decode_video(example["video"])
    assert frames.shape == (example["num_frames"], 32, 32, 3) and frames.dtype == np.uint8
    kept = [example["num_frames"] - 1, 3, 0]
    np.testing.assert_array_equal(decode_video(example["video"], kept), frames[kept])


def test_vocabulary_has_100_distinct_signs():
    language = SyntheticSignLanguage()
    assert len(language.vocabulary) >= 100 and len(set(language.vocabulary)) == len(language.vocabulary)
    codes = [SIGN_CODES[gloss] for gloss in LEXICON]
    assert len(set(codes)) == len(codes)  # no two signs look the same
    assert describe_sign("WHERE").startswith("WHERE: ")
    used = {gloss for s in language.sentences(3000, seed=0, split=None) for gloss in s.signs}
    assert used == set(language.vocabulary)  # the grammar reaches every sign


def test_sign_order_differs_from_word_order_and_function_words_are_not_signed():
    language = SyntheticSignLanguage()
    sentences = language.sentences(400, seed=3, split=None)
    gloss_of = {gloss.lower(): gloss for gloss in LEXICON}
    gloss_of.update({form: gloss for gloss, forms in {**VERBS, **MOTION_VERBS}.items() for form in forms[:3]})
    reordered = 0
    for sentence in sentences:
        words = sentence.text.split()
        spoken = [gloss_of[w] for w in words if w in gloss_of]
        signed = [g for g in sentence.signs if g not in FUNCTION_SIGNS]
        reordered += spoken != signed
        assert "the" in words  # articles are spoken, never signed
        assert not {"THE", "TO", "IS", "WILL", "DOES", "DID"} & set(sentence.signs)
        if sentence.template == "statement":  # signed verb-final, spoken SVO
            verb = next(g for g in sentence.signs if g in VERBS)
            obj = next(g for g in sentence.signs if g in OBJECTS)
            assert sentence.signs.index(verb) > sentence.signs.index(obj)
            assert spoken.index(verb) < spoken.index(obj)
            if sentence.signs[0] in ("YESTERDAY", "LAST-WEEK"):  # tense comes from the time sign
                assert VERBS[verb][2] in words or "did" in words
            if sentence.signs[0] in ("TOMORROW", "NEXT-WEEK", "SOON"):
                assert "will" in words
    assert reordered / len(sentences) > 0.6


def test_held_out_sentences_never_appear_in_training_text(small):
    train = set(small["train"]["text"])
    for split in ("validation", "test"):
        assert not train & set(small[split]["text"])
        assert all(split_of_sentence(text) == split for text in small[split]["text"])
    text = synthetic_text(500, seed=11)
    assert len(set(text)) == 500 and all(split_of_sentence(t) == "train" for t in text)
    assert synthetic_text(5, seed=11, split="test") != text[:5]


def test_smaller_vocabulary_and_non_square_frames(tmp_path):
    language = SyntheticSignLanguage(vocabulary_size=40)
    assert 36 <= len(language.vocabulary) <= 44
    dataset = load_sign_dataset(
        "synthetic",
        cache_dir=str(tmp_path),
        num_train=10,
        num_validation=2,
        num_test=2,
        resolution=(24, 40),
        fps=8,
        vocabulary_size=40,
    )
    assert {g for gloss in dataset["train"]["gloss"] for g in gloss.split()} <= set(language.vocabulary)
    example = dataset["train"][0]
    assert decode_video(example["video"], [0]).shape == (1, 24, 40, 3) and example["fps"] == 8.0
    with pytest.raises(ValueError, match="vocabulary_size=5 is too small"):
        SyntheticSignLanguage(vocabulary_size=5)
    with pytest.raises(ValueError, match="resolution=4 is too small"):
        load_sign_dataset("synthetic", cache_dir=str(tmp_path / "x"), resolution=4)


def test_signs_and_signers_look_different():
    signer = _signer_pool(2, seed=0)
    rng = np.random.default_rng(0)

    def middle_frame(glosses, who=0):
        spec = make_spec(glosses, signer[who], np.random.default_rng(1), (48, 48), 12.0, noise=0.0)
        start, end = spec["signs"][0][:2]
        return render_spec(spec, [int((start + end) / 2 * 12)])[0].astype(int)

    # two signs with different handshape/location differ clearly; the same sign by two signers too
    a, b = middle_frame(["MAN"]), middle_frame(["WHERE"])
    assert np.abs(a - b).sum(axis=2).astype(bool).sum() > 20
    assert np.abs(middle_frame(["MAN"], 0) - middle_frame(["MAN"], 1)).mean() > 5
    spec = make_spec(["MAN", "BUY"], signer[0], rng, (48, 48), 12.0, noise=0.0)
    assert json.loads(json.dumps(spec)) == spec
    frames = render_spec(spec)
    assert np.abs(frames[0].astype(int) - frames[len(frames) // 2]).max() > 60  # hand moves away from rest
