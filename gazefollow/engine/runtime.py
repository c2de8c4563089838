"""Where a run executes: CPU or GPU, one process or several. The one place with these rules,
for training and evaluation alike."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DataLoaderConfiguration

from gazefollow.config import Config, ConfigError


def runs_on_cpu(config: Config) -> bool:
    """CPU when asked, or under "auto" when no GPU is present."""
    device = config.run.device
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def make_accelerator(config: Config, run_dir: Path) -> Accelerator:
    """The training accelerator: CPU when asked or when no GPU is present (several CPU
    processes then talk over gloo); wandb only when logging is not disabled."""
    if config.run.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("run.device=cuda but no CUDA device is available")
    cpu = runs_on_cpu(config)
    precision = config.optim.amp
    if cpu and precision == "fp16":
        if not config.optim.amp_fallback:
            raise ConfigError("optim.amp=fp16 needs a GPU; on a CPU use optim.amp=bf16, or "
                              "--amp O0 (optim.amp=no) for none")
        print("note: optim.amp=fp16 (the original's --amp O1/O2/O3) needs a GPU; none is "
              "present, so this run trains in full precision, as the original did without "
              "apex and CUDA", file=sys.stderr)
        precision = "no"
    log_with = None if config.logging.wandb == "disabled" else "wandb"
    # on a GPU the batches come from pinned memory (train_loader), so their copies to the
    # device need not wait for the host
    return Accelerator(cpu=cpu, mixed_precision=precision, log_with=log_with,
                       gradient_accumulation_steps=config.optim.grad_accumulation,
                       project_dir=str(run_dir),
                       dataloader_config=DataLoaderConfiguration(non_blocking=not cpu))


def describe_setup(accelerator: Accelerator, config: Config) -> str:
    """The line every run starts with: who trains, on what, with which batch."""
    per_process = config.data.batch_size
    accumulation = config.optim.grad_accumulation
    world = accelerator.num_processes
    kind = "one process" if world == 1 else f"{accelerator.distributed_type.value} DDP"
    return (f"{world} process(es) on {accelerator.device.type} ({kind}); batch {per_process} "
            f"per process x {accumulation} accumulation x {world} process(es) = "
            f"{per_process * accumulation * world} global; mixed precision "
            f"{accelerator.mixed_precision}; channels_last "
            f"{'on' if config.model.channels_last else 'off'}; torch.compile "
            f"{'on' if config.model.compile else 'off'}; {torch.get_num_threads()} threads")


def eval_processes(config: Config) -> PartialState:
    """Accelerate's process state for evaluation (several under ``accelerate launch`` /
    ``torchrun``): CPU processes talk over gloo when no GPU is used."""
    return PartialState(cpu=runs_on_cpu(config))


def eval_device(config: Config) -> torch.device:
    """The evaluation device: as configured, or CUDA when available under "auto"; with
    several processes, this process's device."""
    processes = eval_processes(config)
    if processes.num_processes > 1:
        return processes.device
    if config.run.device in ("cuda", "mps"):
        return torch.device(config.run.device)
    if config.run.device == "auto" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
