"""FLa-LLM for Hugging Face.

Importing this package registers the model with the Auto classes (`AutoConfig`, `AutoModel`,
`AutoModelForImageTextToText`, `AutoProcessor`), so `AutoModel.from_pretrained(dir)` returns a
`FlaLlmForSignTranslation`. Saved checkpoints also carry `auto_map` and these module files, so
`trust_remote_code=True` loads them where this package is not installed.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .configuration_flallm import FlaLlmConfig
from .modeling_flallm import FlaLlmForSignTranslation, FlaLlmOutput, FlaLlmPreTrainedModel
from .pipeline_flallm import SignLanguageTranslationPipeline  # registers "sign-language-translation"
from .processing_flallm import FlaLlmProcessor
from .tokenization_flallm import train_tokenizer
from .video_processing_flallm import FlaLlmVideoProcessor
from .vocab_trimming import trim_vocabulary

AutoConfig.register("flallm", FlaLlmConfig, exist_ok=True)
AutoModel.register(FlaLlmConfig, FlaLlmForSignTranslation, exist_ok=True)
AutoModelForImageTextToText.register(FlaLlmConfig, FlaLlmForSignTranslation, exist_ok=True)
AutoProcessor.register(FlaLlmConfig, FlaLlmProcessor, exist_ok=True)

FlaLlmConfig.register_for_auto_class()
FlaLlmForSignTranslation.register_for_auto_class("AutoModel")
FlaLlmProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "FlaLlmConfig",
    "FlaLlmForSignTranslation",
    "FlaLlmOutput",
    "FlaLlmPreTrainedModel",
    "FlaLlmProcessor",
    "FlaLlmVideoProcessor",
    "SignLanguageTranslationPipeline",
    "train_tokenizer",
    "trim_vocabulary",
]
