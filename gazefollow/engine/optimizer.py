"""The optimiser (one group per model part, each with its own learning rate and weight
decay), the learning-rate schedules, and the EMA of the trainable weights."""
from __future__ import annotations

import math
from collections import Counter
from functools import partial

import torch
from diffusers.training_utils import EMAModel
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from gazefollow.config import ConfigError
from gazefollow.engine.checkpoint import CheckpointError


def optimizer_parameter_groups(model: nn.Module, optim_cfg) -> list[dict]:
    """AdamW groups, one per model part (``model.trainable_parts()``) with trainable parameters
    (frozen parts have none):
    {"name", "params", "lr", "weight_decay"}. lr: optim.part_lr[part], else optim.gaze_lr for
    every part but the heatmap head, else optim.lr; weight decay: optim.part_weight_decay[part],
    else optim.weight_decay. LR schedulers scale every group's lr by the same factor."""
    parts = model.trainable_parts()
    for key, table in (("optim.part_lr", optim_cfg.part_lr),
                       ("optim.part_weight_decay", optim_cfg.part_weight_decay)):
        unknown = sorted(set(table) - set(parts))
        if unknown:
            raise ConfigError(f"{key} names {unknown}, not parts of this model ({list(parts)})")
    groups = []
    for name, params in parts.items():
        if not params:
            continue
        lr = optim_cfg.lr
        if optim_cfg.gaze_lr is not None and name != "head":
            lr = optim_cfg.gaze_lr
        for scale, scaled in _by_layer_scale(model, params, optim_cfg.layer_decay).items():
            groups.append({
                "name": name, "params": scaled, "lr": optim_cfg.part_lr.get(name, lr) * scale,
                "weight_decay": optim_cfg.part_weight_decay.get(name, optim_cfg.weight_decay),
            })
    _check_each_parameter_once(model, groups)
    return groups


def _by_layer_scale(model: nn.Module, params: list, decay: float) -> dict[float, list]:
    """{rate scale: a part's parameters}: one scale (1) without layer-wise decay; with it
    (``optim.layer_decay`` < 1, a model with ``layer_ids``), decay^(L + 1 - layer) per layer,
    each its own group of the part (in order, so that a resumed optimizer matches)."""
    if decay == 1 or not hasattr(model, "layer_ids"):
        return {1.0: params}
    ids, top = model.layer_ids()
    out: dict[float, list] = {}
    for parameter in params:
        out.setdefault(decay ** (top - ids[id(parameter)]), []).append(parameter)
    return out


def _check_each_parameter_once(model: nn.Module, groups: list[dict]) -> None:
    """A parameter in no group would silently never train; one in two would step twice."""
    counts = Counter(id(p) for group in groups for p in group["params"])
    names = {id(p): name for name, p in model.named_parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    twice = sorted(names[i] for i, n in counts.items() if n > 1)
    left_out = sorted(names[i] for i in trainable - counts.keys())
    frozen = sorted(names[i] for i in counts.keys() - trainable)
    if twice or left_out or frozen:
        raise AssertionError(f"optimiser groups must hold each trainable parameter once: in "
                             f"two groups {twice}, in none {left_out}, frozen {frozen}")


def make_optimizer(net, optim, fused: bool = False) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay), the original's Adam, or SGD with ``optim.momentum``
    (the GazeNet recipe), one group per model part. ``fused`` (training on a GPU): Adam's
    fused kernel, one launch for all parameters and no host read of its step counters; on
    a CPU the default implementation stays, so CPU runs keep their numbers bit for bit."""
    groups = optimizer_parameter_groups(net, optim)
    if optim.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=optim.momentum)
    kind = torch.optim.Adam if optim.optimizer == "adam" else torch.optim.AdamW
    return kind(groups, fused=True) if fused else kind(groups)


def _warmup(step: int, warmup: int) -> float:
    return step / max(1, warmup)


def _constant(step: int, warmup: int, total: int) -> float:
    return _warmup(step, warmup) if step < warmup else 1.0


def _cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return _warmup(step, warmup)
    return max(0.0, 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


def _epoch_warmup_cosine(step: int, steps_per_epoch: int, epochs: int) -> float:
    """The original's schedule, by epoch e: warm-up e / (W - 1) over W = int(0.1 x epochs)
    epochs (from 0 at epoch 0), then 0.5 (1 + cos(pi (e - W) / (epochs - W))). W <= 1: no
    warm-up (the original divides by zero at W = 1)."""
    epoch, warm = step // steps_per_epoch, int(0.1 * epochs)
    if warm > 1 and epoch < warm:
        return epoch / (warm - 1)
    warm = warm if warm > 1 else 0
    return 0.5 * (1 + math.cos(math.pi * min(epoch - warm, epochs - warm) / max(1, epochs - warm)))


def _multistep(step: int, steps_per_epoch: int, milestones: list[int], gamma: float) -> float:
    """gamma ** (the milestones reached by the step's epoch), as torch's MultiStepLR stepped
    once per epoch."""
    epoch = step // steps_per_epoch
    return gamma ** sum(epoch >= milestone for milestone in milestones)


def _anneal_cos(start: float, end: float, share: float) -> float:
    return end + (start - end) / 2 * (math.cos(math.pi * share) + 1)


def _onecycle(step: int, total: int, pct_start: float, div: float, final_div: float) -> float:
    """torch's OneCycleLR (two phases, cosine) as a factor of the peak rate: up from 1 / div
    until step pct_start x total - 1, then down to 1 / (div x final_div) at the last step."""
    peak_step = pct_start * total - 1
    if peak_step > 0 and step <= peak_step:
        return _anneal_cos(1 / div, 1.0, step / peak_step)
    return _anneal_cos(1.0, 1 / (div * final_div), (step - peak_step) / (total - 1 - peak_step))


def _epoch_cosine(step: int, steps_per_epoch: int, epochs: int, floor: float) -> float:
    """torch's CosineAnnealingLR stepped once per epoch, as a factor of a group's base rate:
    floor + (1 - floor) (1 + cos(pi e / epochs)) / 2, with floor = lr_min / base rate."""
    epoch = min(step // steps_per_epoch, epochs)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * epoch / max(1, epochs)))


def lr_factor(optim, total_steps: int, steps_per_epoch: int, base_lr: float = 1.0):
    """The schedule's factor of a group's base rate at optimizer step s (0-based):
    ``constant`` / ``cosine`` after a linear warm-up of ``optim.warmup_steps`` (the formulas
    of diffusers' constant_with_warmup / cosine schedules), ``epoch_warmup_cosine``, or
    ``multistep`` (by epoch, ``optim.lr_milestones`` and ``optim.lr_gamma``), ``onecycle``,
    ``epoch_cosine`` (down to ``optim.lr_min`` from a group's ``base_lr``)."""
    if optim.lr_schedule == "epoch_cosine":
        return partial(_epoch_cosine, steps_per_epoch=steps_per_epoch, epochs=optim.epochs,
                       floor=optim.lr_min / base_lr if base_lr else 0.0)
    if optim.lr_schedule == "multistep":
        return partial(_multistep, steps_per_epoch=steps_per_epoch,
                       milestones=list(optim.lr_milestones), gamma=optim.lr_gamma)
    if optim.lr_schedule == "onecycle":
        return partial(_onecycle, total=max(total_steps, 2), pct_start=optim.onecycle_pct_start,
                       div=optim.onecycle_div, final_div=optim.onecycle_final_div)
    if optim.lr_schedule == "epoch_warmup_cosine":
        return partial(_epoch_warmup_cosine, steps_per_epoch=steps_per_epoch, epochs=optim.epochs)
    schedule = _cosine if optim.lr_schedule == "cosine" else _constant
    return partial(schedule, warmup=optim.warmup_steps, total=max(total_steps, 1))


def make_lr_scheduler(optimizer, optim, total_steps: int, steps_per_epoch: int = 1):
    """The schedule on the groups of ``optim.schedule_parts`` (every group when empty); the
    other groups keep their base rate. Each group keeps its own base rate under the factor."""
    scheduled = set(optim.schedule_parts)
    return LambdaLR(optimizer, [
        lr_factor(optim, total_steps, steps_per_epoch, group.get("initial_lr", group["lr"]))
        if not scheduled or group.get("name") in scheduled else (lambda step: 1.0)
        for group in optimizer.param_groups])


def ema_parameters(net, optim) -> list[torch.nn.Parameter]:
    """The parameters the EMA covers, in the model's parameter order (the order its saved
    state lists them in): the trainable ones of ``optim.ema_parts``, or every trainable
    parameter when it is empty. Frozen parameters never change, so they have no average."""
    if not optim.ema_parts:
        return [p for p in net.parameters() if p.requires_grad]
    covered = {id(p) for name, params in net.trainable_parts().items()
               if name in optim.ema_parts for p in params}
    return [p for p in net.parameters() if id(p) in covered]


def load_ema_state(ema: EMAModel, state: dict, net, optim) -> None:
    """A checkpoint's EMA into ``ema``. Checkpoints made before frozen parameters left the EMA
    average every parameter: their frozen entries are dropped, so each average stays paired
    with its own parameter."""
    shadows, every = state.get("shadow_params", []), list(net.parameters())
    covered = ema_parameters(net, optim)
    if len(shadows) == len(every) != len(covered):
        kept = {id(p) for p in covered}
        state = {**state, "shadow_params": [s for p, s in zip(every, shadows) if id(p) in kept]}
    if len(state.get("shadow_params", [])) != len(covered):
        raise CheckpointError(f"the checkpoint's EMA averages {len(shadows)} parameters; this "
                              f"model's EMA covers {len(covered)} (optim.ema_parts="
                              f"{list(optim.ema_parts)})")
    ema.load_state_dict(state)


def make_ema(net, optim) -> EMAModel:
    """EMA of ``ema_parameters``: decay ceiling ``optim.ema_rate``; with ``optim.ema_warmup``
    the decay ramps as 1 - (1 + step)^-ema_power, else as (1 + step) / (10 + step);
    ``optim.ema_fixed``: ema_rate from the second step on (the first copies the weights).
    Updated with foreach operations: a few launches for all parameters (the same numbers as
    one update per parameter)."""
    return EMAModel(ema_parameters(net, optim), decay=optim.ema_rate,
                    min_decay=optim.ema_rate if optim.ema_fixed else 0.0,
                    use_ema_warmup=optim.ema_warmup, inv_gamma=1.0, power=optim.ema_power,
                    foreach=True)
