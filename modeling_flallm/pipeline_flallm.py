"""The `sign-language-translation` pipeline: videos in, `{"translation_text": ...}` out.

```python
import modeling_flallm  # registers the task
from transformers import pipeline

translator = pipeline("sign-language-translation", model="path/or/repo")
translator("clip.mp4", num_beams=5, max_new_tokens=60)   # {"translation_text": "..."}
translator(["a.mp4", "frames_dir/", video_array], batch_size=4)   # a list of results
```

A video is a video file (mp4/webm/avi/... decoded with PyAV), a folder of frame images, a uint8
array (T, H, W, 3) or a list of PIL images. Only the frames the model's T -> T/4 sampling keeps are
decoded. Keyword arguments other than `batch_size`/`num_workers` go to `generate()`.

`save_pretrained` writes `custom_pipelines` and this module (with `video_io.py`) next to the
weights, so `pipeline(model=dir, trust_remote_code=True)` works where flallm is not installed.
This file is remote code too: relative imports only.
"""

import numpy as np
import torch
from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .video_io import describe, is_frame_list, load_video

TASK = "sign-language-translation"


class SignLanguageTranslationPipeline(Pipeline):
    """Translate sign language videos with a FLa-LLM checkpoint (model + `FlaLlmProcessor`)."""

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_video_processor = False
    _pipeline_calls_generate = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None or not hasattr(self.processor, "video_processor"):
            raise ValueError(
                f"{TASK} needs the FLa-LLM processor (video processor + tokenizer); none was found with the model."
            )

    def _sanitize_parameters(self, generate_kwargs=None, **kwargs):
        # Every other keyword is a generation option (num_beams, max_new_tokens, length_penalty, ...).
        return {}, {"generate_kwargs": {**(generate_kwargs or {}), **kwargs}}, {}

    def __call__(self, inputs, **kwargs):
        """One video -> a dict; a list of videos -> a list of dicts (in order)."""
        if is_frame_list(inputs):  # a list of frames is one video, not a batch
            inputs = tuple(inputs)
        return super().__call__(inputs, **kwargs)

    def preprocess(self, video):
        video_processor = self.processor.video_processor
        try:
            # Frames shrink to the processor's resize size as they are decoded: memory stays bounded however long
            # the clip (its centre crop is then taken at that size, without a second resize).
            frames = load_video(
                video,
                lambda num_frames: video_processor.sample_frame_indices(num_frames, training=False),
                max_short_side=video_processor.size,
            )
            pixel_values = video_processor(frames, do_sample_frames=False, return_tensors="pt")["pixel_values"][0]
        except (ValueError, FileNotFoundError) as error:
            name = describe(video)
            message = str(error) if name in str(error) else f"{name}: {error}"
            raise type(error)(message) from None
        # numpy, not a tensor: the base collate would concatenate tensors of different lengths.
        return {"frames": pixel_values.numpy()}

    def _forward(self, model_inputs, generate_kwargs=None):
        videos = model_inputs["frames"]
        videos = [videos] if isinstance(videos, np.ndarray) else list(videos)
        num_frames = max(len(v) for v in videos)
        pixel_values = torch.zeros((len(videos), num_frames, *videos[0].shape[1:]), dtype=self.model.dtype)
        pixel_mask = torch.zeros((len(videos), num_frames), dtype=torch.long)
        for i, video in enumerate(videos):
            pixel_values[i, : len(video)] = torch.from_numpy(video)
            pixel_mask[i, : len(video)] = 1
        generate_kwargs = self._prepare_generate_kwargs(dict(generate_kwargs or {}))
        sequences = self.model.generate(
            pixel_values=pixel_values.to(self.device), pixel_mask=pixel_mask.to(self.device), **generate_kwargs
        )
        return {"sequences": sequences}

    def postprocess(self, model_outputs):
        return {
            "translation_text": self.processor.batch_decode(model_outputs["sequences"], skip_special_tokens=True)[0]
        }

    def save_pretrained(self, save_directory, **kwargs):
        """Model, processor (video processor + tokenizer) and this pipeline's code, loadable remotely."""
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)


_registered = PIPELINE_REGISTRY.supported_tasks.get(TASK)
if _registered is not None and _registered["impl"].__name__ == SignLanguageTranslationPipeline.__name__:
    # Another copy of this module registered the task (the installed package, or a checkpoint's remote
    # code): keep it rather than replace it with a warning, but let this class save its entry too.
    SignLanguageTranslationPipeline._registered_impl = {TASK: {**_registered, "impl": SignLanguageTranslationPipeline}}
else:
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=SignLanguageTranslationPipeline, pt_model=AutoModel, type="multimodal"
    )
