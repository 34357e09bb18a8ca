"""Per-module gradient norms: the paper's own analysis (the LLM's gradients dwarf the visual encoder's).

`flallm train` logs them every `logging.grad_norms_every_steps` optimizer steps to the trackers
(`grad_norm/<module>`), to `train.log` and to `<output_dir>/grad_norms.jsonl` (one JSON object a line), so a
run that grounds can be told from one that does not by how much gradient reaches the visual encoder.
"""

from __future__ import annotations

import torch

# Parameter-name prefixes of FlaLlmForSignTranslation, in order (the first match names the module).
MODULE_PREFIXES = (
    ("visual_encoder.backbone.", "backbone"),
    ("visual_encoder.temporal.", "temporal"),
    ("visual_encoder.", "visual_light_t"),  # adapter_input="light_t": the kept stage-1 VL-adapter + Light-T encoder
    ("adapter.", "adapter"),
    ("bag_of_words_head.", "bag_of_words_head"),
)


def module_of(name: str) -> str:
    """The module a parameter name belongs to; the language model is split into encoder, decoder and the rest."""
    for prefix, module in MODULE_PREFIXES:
        if name.startswith(prefix):
            return module
    if name.startswith("language_model."):
        parts = name.split(".")
        if "encoder" in parts:
            return "lm_encoder"
        if "decoder" in parts:
            return "lm_decoder"
        return "lm_other"  # shared embeddings, LM head, a causal LM's layers
    return "other"


@torch.no_grad()
def module_grad_norms(model: torch.nn.Module) -> dict[str, float]:
    """L2 norm of the gradients of each module's trainable parameters (modules without gradients are left out)."""
    squares: dict[str, torch.Tensor] = {}
    for name, parameter in model.named_parameters():
        if parameter.grad is None:
            continue
        module = module_of(name)
        value = parameter.grad.detach().float().pow(2).sum()
        squares[module] = squares[module] + value if module in squares else value
    return {module: float(total.sqrt()) for module, total in squares.items()}


@torch.no_grad()
def encoder_output_spread(model: torch.nn.Module, batch: dict) -> float:
    """How much what the decoder reads varies over clips and time steps, relative to its mean.

    The language model encoder's output over the visual input (the visual embeddings for a decoder-only
    language model), over the real steps of `batch` (a collated dev batch): the mean squared distance of each
    step's vector from the batch mean, divided by the mean's squared norm. Near 0, every clip reads the same to
    the decoder, which can then only write the language prior: a stage 1 that does not ground (BENCHMARKS.md,
    "Stage 1 diagnosis") can drop from ~2.6 at initialisation to below 0.001 within 1000 steps (not every run
    that fails collapses: read it with dev BLEU and the gradient norms).
    """
    was_training = model.training
    model.eval()
    try:
        embeds, mask, _ = model._visual_embeddings(batch["pixel_values"], batch.get("pixel_mask"), None, None)
        if model.config.is_encoder_decoder:
            states = model.language_model.get_encoder()(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        else:
            states = embeds
        steps = states[mask.bool()].float()
        mean = steps.mean(0)
        return float((steps - mean).pow(2).sum(1).mean() / mean.pow(2).sum().clamp(min=1e-12))
    finally:
        model.train(was_training)
