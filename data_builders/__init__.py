"""Sign language corpora as `datasets` objects with one shared schema, plus video decoding.

from data_builders import load_sign_dataset, decode_video
dataset = load_sign_dataset("synthetic")                  # or phoenix14t / csl_daily / how2sign + data_dir
example = dataset["train"][0]                              # id, text, gloss, signer, num_frames, fps, video
frames = decode_video(example["video"], indices=[0, 4, 8]) # uint8 (3, H, W, 3)
collator = SignTranslationCollator(processor, training=True) # batches for FlaLlmForSignTranslation
"""

from .common import COLUMNS, SPLITS, BadSampleError, prepared_features, raw_features
from .csl_daily import CslDailyBuilder, load_plain_pickle
from .how2sign import How2SignBuilder
from .loading import BUILDERS, get_builder, load_sign_dataset
from .phoenix14t import Phoenix14TBuilder
from .synthetic import (
    SyntheticConfig,
    SyntheticSentence,
    SyntheticSignBuilder,
    SyntheticSignLanguage,
    describe_sign,
    render_spec,
    split_of_sentence,
    synthetic_text,
)
from .video_io import decode_video, probe_video


def __getattr__(name):
    # the collator needs torch; import it only when asked, so `flallm prepare` stays light
    if name in ("SignTranslationCollator", "build_dataloader"):
        from . import collator

        return getattr(collator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BUILDERS",
    "COLUMNS",
    "SPLITS",
    "BadSampleError",
    "SignTranslationCollator",
    "CslDailyBuilder",
    "How2SignBuilder",
    "Phoenix14TBuilder",
    "SyntheticConfig",
    "SyntheticSentence",
    "SyntheticSignBuilder",
    "SyntheticSignLanguage",
    "build_dataloader",
    "decode_video",
    "describe_sign",
    "get_builder",
    "load_plain_pickle",
    "load_sign_dataset",
    "prepared_features",
    "probe_video",
    "raw_features",
    "render_spec",
    "split_of_sentence",
    "synthetic_text",
]
