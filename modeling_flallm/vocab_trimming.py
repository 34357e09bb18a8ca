"""Vocabulary trimming, as FLa-LLM does it.

The paper: "model and tokenizer are trimmed using the translation corpus of the target SLT train set to save GPU
memory". mbart-large-cc25 has 250k multilingual tokens, of which a monolingual SLT train set uses a small fraction;
its tied embedding matrix / LM head (250k x 1024) is what trimming shrinks, and the smaller softmax makes every
training step cheaper.

`trim_vocabulary(tokenizer, texts, model)` keeps the tokens the corpus uses plus every special token, added token
(mBART language codes, `<mask>`) and the few tokens the tokenizer needs to stay exact (see below), in their original
order, and

- rewrites the tokenizer at the level of its `tokenizer.json` (vocabulary, BPE merges, added tokens, post-processor
  and padding ids) and reloads it through its own class, so the result is what `save_pretrained` /
  `AutoTokenizer.from_pretrained` give back;
- slices the model's vocabulary-indexed tensors in place: input embeddings, LM head (weight and bias), every module
  tied to them (encoder/decoder `embed_tokens`, T5 `shared`) and BART-family `final_logits_bias`; then sets
  `vocab_size` and remaps every special-token id in the configs and generation config.

Guarantees: encoding a corpus sentence with the trimmed tokenizer gives the original ids mapped to the new ones, so
decoding gives the original text (checked on the whole corpus after trimming: a violation raises `RuntimeError`);
the trimmed model's logits are the original logits at the kept ids (rows are sliced, nothing is recomputed).

Why encoding stays exact: Unigram's best segmentation of a corpus word only uses kept pieces, and removing other
pieces only removes other candidates (the lowest-scoring piece is kept too: `<unk>` is scored from it, and a higher
`<unk>` score could let a path through a removed single-character piece's `<unk>` win); BPE keeps every merge that
can build a kept token, so the corpus replays the same merges in the same order; WordPiece's greedy longest match
finds the same pieces in a subset that contains them. Text outside the corpus still encodes with byte-level and
byte-fallback models (the 256 byte tokens are kept), but may use more, shorter tokens, or `<unk>` with
Unigram/WordPiece when a character never occurs in the corpus.
"""

import json
import logging
import os
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from tokenizers import Tokenizer, pre_tokenizers
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

SUPPORTED_MODELS = ("Unigram", "BPE", "WordPiece", "WordLevel")

# Config / generation-config fields holding one token id or a list of them.
TOKEN_ID_FIELDS = (
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "sep_token_id",
    "decoder_start_token_id",
    "forced_bos_token_id",
    "forced_eos_token_id",
)
# Generation-config fields listing tokens never to generate: a trimmed-away token cannot be generated anyway.
SUPPRESS_FIELDS = ("suppress_tokens", "begin_suppress_tokens")
# Fields this module does not rewrite; a warning says so when they are set.
UNHANDLED_GENERATION_FIELDS = ("sequence_bias", "force_words_ids", "forced_decoder_ids")


@dataclass
class TrimResult:
    """What `trim_vocabulary` returns.

    `kept_ids[new_id]` is the original id of each token of the trimmed vocabulary (increasing order), so
    `original_logits[..., kept_ids]` lines up with the trimmed model's logits.
    """

    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel | None
    kept_ids: list[int]
    old_to_new: dict[int, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.old_to_new = {old: new for new, old in enumerate(self.kept_ids)}

    def map_ids(self, ids):
        """Original ids -> trimmed ids, for an int, a (nested) list or a tensor of any shape.

        Negative values (the -100 of label padding) pass through. An id that was trimmed away raises `ValueError`.
        """
        if isinstance(ids, torch.Tensor):
            size = max(self.kept_ids[-1], int(ids.max()) if ids.numel() else 0) + 1
            lookup = torch.full((size,), -1, dtype=torch.long, device=ids.device)
            lookup[torch.tensor(self.kept_ids, device=ids.device)] = torch.arange(len(self.kept_ids), device=ids.device)
            mapped = torch.where(ids >= 0, lookup[ids.clamp(min=0).long()], ids.long())
            dropped = ids[(ids >= 0) & (mapped < 0)]
            if dropped.numel():
                raise ValueError(f"token ids {dropped.unique()[:10].tolist()} were trimmed away")
            return mapped.to(ids.dtype)
        if isinstance(ids, int):
            if ids < 0:
                return ids
            if ids not in self.old_to_new:
                raise ValueError(f"token id {ids} was trimmed away")
            return self.old_to_new[ids]
        return [self.map_ids(i) for i in ids]


def trim_vocabulary(
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    model: PreTrainedModel | None = None,
    keep_tokens: Sequence[str] = (),
    keep_ids: Sequence[int] = (),
    keep_bytes: bool = True,
    batch_size: int = 1000,
) -> TrimResult:
    """Trim `tokenizer` (and `model`, in place) to the tokens `texts` use.

    Args:
        tokenizer: a fast tokenizer (`PreTrainedTokenizerFast` / `TokenizersBackend`, e.g. mbart-large-cc25's)
            with a Unigram, BPE, WordPiece or WordLevel model. It is not modified.
        texts: the corpus, normally the target sentences of the SLT train set.
        model: the language model the tokenizer belongs to (MBart/BART/T5/Llama/Qwen2 ... `PreTrainedModel`, or a
            model wrapping one). Trimmed **in place**, without copying the weights first (for mBART-large a copy
            would be another 2.4 GB); the same object is returned in the result. Token ids its configs and
            generation config refer to are kept.
        keep_tokens / keep_ids: tokens to keep although the corpus does not use them.
        keep_bytes: for byte-level BPE (GPT-2, Llama-3, Qwen2) and byte-fallback models, keep the 256 byte tokens so
            any text, not only the corpus, can still be encoded.
        batch_size: sentences per tokenizer call.

    Returns:
        `TrimResult(tokenizer, model, kept_ids)`; `result.map_ids(...)` converts original ids.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if not isinstance(backend, Tokenizer):
        raise ValueError(
            f"trim_vocabulary needs a fast tokenizer backed by the `tokenizers` library, got {type(tokenizer).__name__}"
        )
    kind = type(backend.model).__name__
    if kind not in SUPPORTED_MODELS:
        raise ValueError(f"cannot trim a tokenizer with a {kind} model; supported models: {SUPPORTED_MODELS}")
    state = json.loads(backend.to_str())
    state["model"].setdefault("type", kind)  # older tokenizer.json files omit it
    old_tokens = {i: t for t, i in backend.get_vocab(with_added_tokens=True).items()}
    token_to_id = {t: i for i, t in old_tokens.items()}

    # 1. The corpus, encoded exactly as a user of the tokenizer would encode it (special tokens included, so the
    # check below also covers the post-processor and class state such as mBART's src_lang).
    texts = list(texts)
    encodings = _encode(tokenizer, texts, batch_size)
    keep = {i for ids in encodings for i in ids}
    num_used = len(keep)

    # 2. What the tokenizer and the model need whatever the corpus.
    keep.update(token["id"] for token in state["added_tokens"])
    keep.update(tokenizer.all_special_ids)
    _map_post_processor_ids(state["post_processor"], lambda i: keep.add(i) or i)
    if state.get("padding"):
        keep.add(state["padding"]["pad_id"])
    keep.update(_model_required_ids(state["model"], token_to_id, keep_bytes, state))
    missing = [t for t in keep_tokens if t not in token_to_id]
    if missing:
        raise ValueError(f"keep_tokens {missing} are not in the tokenizer's vocabulary")
    keep.update(token_to_id[t] for t in keep_tokens)
    out_of_range = [i for i in keep_ids if i not in old_tokens]
    if out_of_range:
        raise ValueError(f"keep_ids {out_of_range} are not token ids of the tokenizer (0..{len(old_tokens) - 1})")
    keep.update(keep_ids)
    if model is not None:
        keep.update(i for i in _config_token_ids(model) if i in old_tokens)
    if state["model"]["type"] == "BPE":
        keep = _bpe_closure(state["model"], keep, old_tokens, token_to_id)
    kept_ids = sorted(keep)
    old_to_new = {old: new for new, old in enumerate(kept_ids)}

    # 3. The trimmed tokenizer.json, then the tokenizer through its own class.
    state["model"] = _trim_model_state(state["model"], kept_ids, old_tokens, old_to_new)
    state["added_tokens"] = [{**token, "id": old_to_new[token["id"]]} for token in state["added_tokens"]]
    state["post_processor"] = _map_post_processor_ids(state["post_processor"], old_to_new.__getitem__)
    if state.get("padding"):
        state["padding"]["pad_id"] = old_to_new[state["padding"]["pad_id"]]
    trimmed = _reload_with_backend(tokenizer, json.dumps(state, ensure_ascii=False))
    _check_tokenizer(tokenizer, trimmed, texts, encodings, kept_ids, old_tokens, batch_size)

    if model is not None:
        trim_model(model, kept_ids)
    result = TrimResult(tokenizer=trimmed, model=model, kept_ids=kept_ids)
    logger.info(
        "Trimmed the vocabulary from %d to %d tokens (%.1f%%): %d used by the %d corpus sentences, the rest special, "
        "added, requested or needed by the tokenizer",
        len(old_tokens),
        len(kept_ids),
        100.0 * len(kept_ids) / len(old_tokens),
        num_used,
        len(texts),
    )
    return result


def find_kept_ids(original_tokenizer, trimmed_tokenizer) -> list[int]:
    """The `kept_ids` that turn `original_tokenizer` into `trimmed_tokenizer`, recovered from the token strings.

    Stage 2 of FLa-LLM needs it: stage 1 trains Light-T with the trimmed tokenizer (no LLM involved), and stage 2
    loads the full pre-trained LLM, which must be trimmed to the same vocabulary:
    `trim_model(llm, find_kept_ids(llm_tokenizer, stage1_tokenizer))`.
    """
    original = original_tokenizer.get_vocab()
    trimmed = sorted(trimmed_tokenizer.get_vocab().items(), key=lambda item: item[1])
    if [i for _, i in trimmed] != list(range(len(trimmed))):
        raise ValueError("the trimmed tokenizer's ids are not contiguous from 0")
    missing = [token for token, _ in trimmed if token not in original]
    if missing:
        raise ValueError(f"{len(missing)} tokens of the trimmed tokenizer are not in the original one: {missing[:10]}")
    return [original[token] for token, _ in trimmed]


def trim_model(model: PreTrainedModel, kept_ids: Sequence[int]) -> PreTrainedModel:
    """Keep only the rows `kept_ids` (increasing) of `model`'s vocabulary tensors, in place, and fix its configs.

    Shared (tied) parameters stay shared. `vocab_size` is set wherever a config or module holds the old size, and
    special-token ids in configs and generation configs are remapped; an id whose token was trimmed away is
    dropped with a warning.
    """
    kept_ids = list(kept_ids)
    if not kept_ids or kept_ids != sorted(set(kept_ids)):
        raise ValueError("kept_ids must be a non-empty, strictly increasing list of token ids")
    input_embeddings = model.get_input_embeddings()
    output_embeddings = model.get_output_embeddings()
    old_rows = input_embeddings.weight.shape[0]
    if kept_ids[-1] >= old_rows:
        raise ValueError(
            f"kept id {kept_ids[-1]} is outside the model's {old_rows}-row embedding matrix: "
            "the tokenizer and the model do not match"
        )
    old_to_new = {old: new for new, old in enumerate(kept_ids)}
    index = torch.tensor(kept_ids, dtype=torch.long, device=input_embeddings.weight.device)

    vocab_parameters = [input_embeddings.weight]
    if output_embeddings is not None:
        if output_embeddings.weight.shape[0] != old_rows:
            raise ValueError(
                f"the output embeddings have {output_embeddings.weight.shape[0]} rows and the input embeddings "
                f"{old_rows}: cannot trim both to the same vocabulary"
            )
        vocab_parameters.append(output_embeddings.weight)
        if getattr(output_embeddings, "bias", None) is not None:
            vocab_parameters.append(output_embeddings.bias)
    replacements = {
        id(p): nn.Parameter(p.detach().index_select(0, index).clone(), requires_grad=p.requires_grad)
        for p in vocab_parameters
    }

    for module in model.modules():
        replaced = False
        for name, parameter in list(module._parameters.items()):
            if parameter is not None and id(parameter) in replacements:
                module._parameters[name] = replacements[id(parameter)]
                replaced = True
        if replaced and isinstance(module, nn.Embedding):
            module.num_embeddings = len(kept_ids)
            if module.padding_idx is not None:
                module.padding_idx = old_to_new.get(module.padding_idx)
        if replaced and isinstance(module, nn.Linear):
            module.out_features = len(kept_ids)
        bias = module._buffers.get("final_logits_bias")
        if bias is not None and bias.shape[-1] == old_rows:
            module._buffers["final_logits_bias"] = bias.index_select(-1, index.to(bias.device))
        if module.__dict__.get("vocab_size") == old_rows:  # e.g. LlamaForCausalLM.vocab_size
            module.vocab_size = len(kept_ids)

    for config in _configs(model):
        if getattr(config, "vocab_size", None) == old_rows:
            config.vocab_size = len(kept_ids)
        _remap_config_ids(config, old_to_new)
    return model


# ---------------------------------------------------------------------------------------------------------------
# tokenizer.json surgery


def _model_required_ids(model_state, token_to_id, keep_bytes, state) -> set[int]:
    """Ids the tokenizer model itself relies on: `<unk>`, Unigram's lowest-scoring piece, the byte tokens."""
    required = set()
    if model_state["type"] == "Unigram":
        vocab = model_state["vocab"]
        if model_state.get("unk_id") is not None:
            required.add(model_state["unk_id"])
        # Unigram scores <unk> as (lowest score - 10): keeping that piece keeps the penalty, hence segmentations.
        required.add(min(range(len(vocab)), key=lambda i: vocab[i][1]))
    elif model_state.get("unk_token") in token_to_id:
        required.add(token_to_id[model_state["unk_token"]])
    if keep_bytes:
        if model_state.get("byte_fallback"):
            required.update(token_to_id[t] for t in (f"<0x{b:02X}>" for b in range(256)) if t in token_to_id)
        if _uses_byte_level(state):
            required.update(token_to_id[c] for c in pre_tokenizers.ByteLevel.alphabet() if c in token_to_id)
    return required


def _uses_byte_level(state) -> bool:
    def walk(node):
        if isinstance(node, dict):
            return node.get("type") == "ByteLevel" or any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False

    return walk(state.get("pre_tokenizer")) or walk(state.get("decoder"))


def _merge_parts(merge) -> tuple[str, str]:
    if isinstance(merge, str):  # "a b", the format of tokenizers < 0.20
        parts = merge.split(" ")
        if len(parts) != 2:
            raise ValueError(f"cannot parse BPE merge {merge!r}")
        return parts[0], parts[1]
    return merge[0], merge[1]


def _bpe_closure(model_state, keep, old_tokens, token_to_id) -> set[int]:
    """Add every token any merge building a kept token starts from, recursively.

    Which of several merges yielding the same token the corpus used is unknown, so all of them are kept: the corpus
    then replays exactly its original merges (a merge list that is a rank-ordered superset of the merges used gives
    the same result), at the cost of a few extra intermediate tokens.
    """
    prefix_length = len(model_state.get("continuing_subword_prefix") or "")
    builders = defaultdict(list)
    for merge in model_state["merges"]:
        a, b = _merge_parts(merge)
        builders[a + b[prefix_length:]].append((a, b))
    keep = set(keep)
    stack = [old_tokens[i] for i in keep]
    while stack:
        for parts in builders.get(stack.pop(), ()):
            for part in parts:
                part_id = token_to_id.get(part)
                if part_id is not None and part_id not in keep:
                    keep.add(part_id)
                    stack.append(part)
    return keep


def _trim_model_state(model_state, kept_ids, old_tokens, old_to_new) -> dict:
    model_state = dict(model_state)
    kind = model_state["type"]
    if kind == "Unigram":
        vocab = model_state["vocab"]
        model_state["vocab"] = [vocab[i] for i in kept_ids if i < len(vocab)]
        if model_state.get("unk_id") is not None:
            model_state["unk_id"] = old_to_new[model_state["unk_id"]]
        return model_state
    model_state["vocab"] = {token: old_to_new[i] for token, i in model_state["vocab"].items() if i in old_to_new}
    if kind == "BPE":
        kept_tokens = set(model_state["vocab"])
        prefix_length = len(model_state.get("continuing_subword_prefix") or "")
        merges = []
        for merge in model_state["merges"]:
            a, b = _merge_parts(merge)
            if a in kept_tokens and b in kept_tokens and a + b[prefix_length:] in kept_tokens:
                merges.append(merge)
        model_state["merges"] = merges
    return model_state


def _map_post_processor_ids(processor, fn):
    """Apply `fn` to every token id in a post-processor's state; returns the new state."""
    if processor is None:
        return None
    kind = processor.get("type")
    if kind == "Sequence":
        return {**processor, "processors": [_map_post_processor_ids(p, fn) for p in processor["processors"]]}
    if kind == "TemplateProcessing":
        special_tokens = {
            name: {**spec, "ids": [fn(i) for i in spec["ids"]]} for name, spec in processor["special_tokens"].items()
        }
        return {**processor, "special_tokens": special_tokens}
    if kind in ("BertProcessing", "RobertaProcessing"):
        return {**processor, **{key: [processor[key][0], fn(processor[key][1])] for key in ("sep", "cls")}}
    if kind == "ByteLevel":
        return processor
    raise ValueError(f"cannot remap token ids in a {kind} post-processor")


def _reload_with_backend(tokenizer, backend_json: str):
    """Save `tokenizer`, swap in the trimmed tokenizer.json and load it back with the same class.

    Going through `from_pretrained` lets the class rebuild whatever it derives from the vocabulary (mBART's language
    code ids, cached prefix/suffix ids), exactly as it will when a user reloads the saved trimmed tokenizer.
    """
    with tempfile.TemporaryDirectory() as directory:
        tokenizer.save_pretrained(directory)
        with open(os.path.join(directory, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(backend_json)
        trimmed = type(tokenizer).from_pretrained(directory)
    trimmed.name_or_path = tokenizer.name_or_path
    return trimmed


def _check_tokenizer(original, trimmed, texts, encodings, kept_ids, old_tokens, batch_size):
    """The trimmed vocabulary is the kept tokens in order, and the corpus encodes to the mapped original ids."""
    if len(trimmed) != len(kept_ids):
        raise RuntimeError(
            f"reloading the trimmed tokenizer as {type(original).__name__} gave {len(trimmed)} tokens instead of "
            f"{len(kept_ids)}: the class adds tokens of its own"
        )
    backend = trimmed.backend_tokenizer
    for new_id, old_id in enumerate(kept_ids):
        if backend.id_to_token(new_id) != old_tokens[old_id]:
            raise RuntimeError(
                f"trimmed token {new_id} is {backend.id_to_token(new_id)!r}, expected {old_tokens[old_id]!r}"
            )
    old_to_new = {old: new for new, old in enumerate(kept_ids)}
    for index, (new_ids, old_ids) in enumerate(zip(_encode(trimmed, texts, batch_size), encodings)):
        expected = [old_to_new[i] for i in old_ids]
        if new_ids != expected:
            raise RuntimeError(
                f"the trimmed tokenizer encodes corpus sentence {index} ({texts[index]!r}) as "
                f"{trimmed.convert_ids_to_tokens(new_ids)} instead of {trimmed.convert_ids_to_tokens(expected)}"
            )


def _encode(tokenizer, texts, batch_size) -> list[list[int]]:
    encodings = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        encodings.extend(tokenizer(batch, truncation=False, padding=False)["input_ids"])
    return encodings


# ---------------------------------------------------------------------------------------------------------------
# model configs


def _configs(model) -> list:
    """Every config and generation config of `model` and of the pre-trained models inside it, once each."""
    found = {}
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            for config in (module.config, module.config.get_text_config()):
                found[id(config)] = config
            generation_config = getattr(module, "generation_config", None)
            if generation_config is not None:
                found[id(generation_config)] = generation_config
    return list(found.values())


def _config_token_ids(model) -> set[int]:
    ids = set()
    for config in _configs(model):
        for name in TOKEN_ID_FIELDS:
            value = getattr(config, name, None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(v for v in value if isinstance(v, int))
    return ids


def _remap_config_ids(config, old_to_new) -> None:
    name_of = type(config).__name__
    for name in TOKEN_ID_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int):
            if value not in old_to_new:
                logger.warning("%s.%s=%d was trimmed away; setting it to None", name_of, name, value)
            setattr(config, name, old_to_new.get(value))
        elif isinstance(value, (list, tuple)):
            dropped = [v for v in value if v not in old_to_new]
            if dropped:
                logger.warning("%s.%s: ids %s were trimmed away and are dropped", name_of, name, dropped)
            setattr(config, name, [old_to_new[v] for v in value if v in old_to_new])
    for name in SUPPRESS_FIELDS:
        value = getattr(config, name, None)
        if value:
            setattr(config, name, [old_to_new[v] for v in value if v in old_to_new])
    bad_words = getattr(config, "bad_words_ids", None)
    if bad_words:
        # A sequence containing a trimmed-away token can no longer be generated: nothing to forbid.
        remapped = [[old_to_new[v] for v in words] for words in bad_words if all(v in old_to_new for v in words)]
        config.bad_words_ids = remapped or None
    for name in UNHANDLED_GENERATION_FIELDS:
        if getattr(config, name, None):
            logger.warning("%s.%s refers to token ids and was not remapped; update it by hand", name_of, name)
