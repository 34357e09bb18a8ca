"""The optimizer of a stage (one parameter group per `optimizer.module_lr` prefix, fused kernels where torch has
them) and its learning-rate schedule."""

from __future__ import annotations

import torch

from .config import TrainConfig

FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda", "mps", "xpu")  # where torch has fused SGD / Adam / AdamW kernels


def build_optimizer(model, config: TrainConfig, device: torch.device | str = "cpu") -> torch.optim.Optimizer:
    """One parameter group per `optimizer.module_lr` prefix (e.g. adapter 1e-3), the rest at `optimizer.lr`.

    Frozen parameters are left out. A prefix that matches no trainable parameter is an error (a typo
    would otherwise silently train that module at the default rate).
    """
    settings = config.optimizer
    prefixes = sorted(settings.module_lr, key=len, reverse=True)  # the most specific prefix wins
    groups: dict[str, list] = {prefix: [] for prefix in prefixes}
    groups["default"] = []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        prefix = next((p for p in prefixes if name == p or name.startswith(p + ".")), "default")
        groups[prefix].append(parameter)
    unused = [prefix for prefix in prefixes if not groups[prefix]]
    if unused:
        raise ValueError(
            f"optimizer.module_lr prefix(es) {unused} match no trainable parameter; expected module names "
            f"such as {sorted({n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad})}"
        )
    param_groups = [
        {"params": params, "lr": settings.module_lr.get(prefix, settings.lr), "name": prefix}
        for prefix, params in groups.items()
        if params
    ]
    fused = settings.fused if settings.fused is not None else torch.device(device).type in FUSED_OPTIMIZER_DEVICES
    if settings.name == "sgd":
        return torch.optim.SGD(
            param_groups, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay, fused=fused
        )
    optimizer_class = torch.optim.Adam if settings.name == "adam" else torch.optim.AdamW
    return optimizer_class(
        param_groups,
        lr=settings.lr,
        betas=tuple(settings.betas),
        eps=settings.eps,
        weight_decay=settings.weight_decay,
        fused=fused,
    )


def build_scheduler(optimizer, scheduler, total_steps: int, num_processes: int = 1):
    """The `scheduler` section's schedule over `total_steps` optimizer steps of one process (warmup: `warmup_steps`,
    else `warmup_ratio` of them). Accelerate steps a prepared scheduler once per process per optimizer step."""
    from transformers import get_scheduler

    warmup = scheduler.warmup_steps or int(scheduler.warmup_ratio * total_steps)
    return get_scheduler(
        scheduler.name,
        optimizer,
        num_warmup_steps=warmup * num_processes,
        num_training_steps=total_steps * num_processes,
    )
