"""Processor of FLa-LLM: its video processor (`video_processing_flallm.py`) and its tokenizer."""

import torch
from transformers import AutoTokenizer
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .video_processing_flallm import FlaLlmVideoProcessor


class FlaLlmProcessor(ProcessorMixin):
    r"""
    The video processor and the tokenizer of a FLa-LLM checkpoint.

    `processor(videos=..., text=...)` gives `pixel_values`, `pixel_mask` and, with text, `labels`
    (padding set to -100, ignored by the loss). Labels hold the target tokens followed by the end
    of sequence (and mBART's language code, when the tokenizer appends one); a leading BOS that
    decoder-only tokenizers add is removed, since the model feeds its own separator.
    """

    def __init__(self, video_processor=None, tokenizer=None, **kwargs):
        super().__init__(video_processor, tokenizer, **kwargs)

    def check_argument_for_proper_class(self, argument_name, argument):
        # transformers resolves "VideoProcessorMixin" through torchvision-only mappings; check directly.
        if argument_name == "video_processor":
            if not isinstance(argument, FlaLlmVideoProcessor):
                raise TypeError(f"video_processor must be a FlaLlmVideoProcessor, got {type(argument).__name__}.")
            return FlaLlmVideoProcessor
        return super().check_argument_for_proper_class(argument_name, argument)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        # AutoVideoProcessor would need torchvision; load the two parts directly.
        trust_remote_code = kwargs.pop("trust_remote_code", None)
        video_processor = FlaLlmVideoProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs)
        # The tokenizer reads config.json (model_type "flallm"), which needs remote code without this package.
        tokenizer = AutoTokenizer.from_pretrained(
            pretrained_model_name_or_path, trust_remote_code=trust_remote_code, **kwargs
        )
        return [video_processor, tokenizer]

    def tokenize_targets(self, text: str | list[str], max_length: int | None = None) -> torch.LongTensor:
        """Target sentences -> `labels` (batch, length), -100 where padded."""
        if isinstance(text, str):
            text = [text]
        tokenizer = self.tokenizer
        sequences = []
        for sentence in tokenizer(list(text), add_special_tokens=True)["input_ids"]:
            if tokenizer.bos_token_id is not None and sentence[:1] == [tokenizer.bos_token_id]:
                sentence = sentence[1:]
            if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in sentence[-2:]:
                sentence = sentence + [tokenizer.eos_token_id]
            if max_length is not None and len(sentence) > max_length:
                sentence = sentence[: max_length - 1] + sentence[-1:]
            sequences.append(sentence)
        labels = torch.full((len(sequences), max(len(s) for s in sequences)), -100, dtype=torch.long)
        for i, sentence in enumerate(sequences):
            labels[i, : len(sentence)] = torch.tensor(sentence, dtype=torch.long)
        return labels

    def __call__(
        self, videos=None, text=None, training: bool = False, max_target_length: int | None = None, **kwargs
    ) -> BatchFeature:
        if videos is None and text is None:
            raise ValueError("FlaLlmProcessor needs videos, text, or both.")
        data = {}
        if videos is not None:
            data.update(self.video_processor(videos, training=training, **kwargs))
        if text is not None:
            data["labels"] = self.tokenize_targets(text, max_length=max_target_length)
        return BatchFeature(data)

    def batch_decode(self, sequences, skip_special_tokens: bool = True, **kwargs) -> list[str]:
        return [
            text.strip()
            for text in self.tokenizer.batch_decode(sequences, skip_special_tokens=skip_special_tokens, **kwargs)
        ]

    def decode(self, sequence, skip_special_tokens: bool = True, **kwargs) -> str:
        return self.tokenizer.decode(sequence, skip_special_tokens=skip_special_tokens, **kwargs).strip()

    @property
    def model_input_names(self):
        return ["pixel_values", "pixel_mask"]


__all__ = ["FlaLlmProcessor"]
