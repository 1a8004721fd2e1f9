"""THE training loop: fine-tuning, every unlearning method and the relearning attack use it.

It knows nothing about what is being learned. A caller gives it a model (whatever parameters
have `requires_grad` are trained — full, LoRA, or a method's subset), a source of batches, and a
loss function; it handles precision (bf16 autocast where the hardware supports it), gradient
accumulation, the learning-rate schedule, clipping, periodic checkpoints, and stops with a clear
message when the loss stops being a finite number. accelerate places everything on the right
device and, under `accelerate launch`, wraps the model for DDP / FSDP / DeepSpeed.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.nn.attention import SDPBackend, sdpa_kernel

B = TypeVar("B")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; nothing past the last checkpoint is trustworthy."""


class LoraSettings(BaseModel):
    """LoRA adapter settings (Hu et al. 2021); applied by `obliviate.train.lora.apply_lora`."""

    model_config = ConfigDict(extra="forbid")
    r: int = Field(16, ge=1, description="adapter rank")
    alpha: int = Field(32, ge=1, description="scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the adapter input")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="module names that get adapters",
    )


class TrainConfig(BaseModel):
    """Optimisation settings shared by every use of the loop."""

    model_config = ConfigDict(extra="forbid")
    lr: float = Field(1e-4, gt=0, description="peak learning rate (AdamW)")
    epochs: float = Field(1.0, gt=0, description="passes over the batches (fractional allowed)")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    schedule: Literal["constant", "linear", "cosine"] = Field("linear", description="LR decay")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="fraction of steps of linear warmup")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    max_grad_norm: float | None = Field(1.0, description="gradient clipping norm (None: off)")
    bf16: bool | None = Field(None, description="bf16 autocast; None = on where supported")
    seed: int = Field(0, description="seed for batch order and any sampling")
    checkpoint_every: int = Field(0, ge=0, description="save a checkpoint every N steps (0: off)")
    log_every: int = Field(1, ge=1, description="record the curve every N steps")

    def uses_bf16(self, device: torch.device) -> bool:
        """Whether training on `device` runs under bf16 autocast (`bf16`, or where supported)."""
        return bf16_supported(device) if self.bf16 is None else self.bf16


@dataclass
class StepOutput:
    """What a loss function returns: the scalar to minimise and named values for the curve."""

    loss: torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    steps: int
    tokens: int
    wall_s: float
    curve: list[dict[str, float]]
    stopped: str  # "completed" | "max_steps" | a callback's reason

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    # Recent x86 CPUs (AVX512-BF16/AMX) and torch's CPU kernels run bf16 autocast faster than fp32.
    return device.type == "cpu"


def freeze_embeddings(model: Any) -> None:
    """Stop the token embeddings from training (a tied LM head is the same tensor). Models
    without `get_input_embeddings` (a composed wrapper) are left as they are."""
    get = getattr(model, "get_input_embeddings", None)
    embeddings = get() if get is not None else None
    if embeddings is not None:
        embeddings.weight.requires_grad_(False)


BatchSource = Sequence[B] | Callable[[int, random.Random], Sequence[B]]
Callback = Callable[[int, dict[str, float]], str | None]


@dataclass
class Trainer(Generic[B]):
    """Runs `loss_fn` over batches. A callback returning a string stops training with that reason."""

    model: Any
    loss_fn: Callable[[Any, B], StepOutput]
    cfg: TrainConfig
    callbacks: list[Callback] = field(default_factory=list)
    checkpoint_dir: Path | None = None
    count_tokens: Callable[[B], int] = lambda b: int(getattr(b, "n_tokens", 0))
    accelerator: Any = None

    def run(self, batches: BatchSource[B]) -> TrainResult:
        from accelerate.utils import set_seed

        set_seed(self.cfg.seed)
        rng = random.Random(self.cfg.seed)
        probe_device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        use_bf16 = self.cfg.uses_bf16(probe_device)
        acc = self.accelerator or _make_accelerator("bf16" if use_bf16 else "no", self.cfg.grad_accum)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("no trainable parameters: every parameter has requires_grad=False")
        # The fused kernel cuts the optimizer step ~7x on CPU (one pass over params/grads/moments).
        fused = all(p.device.type in ("cpu", "cuda") for p in params) and all(p.is_floating_point() for p in params)
        opt = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay, fused=fused)

        def epoch_batches(epoch: int) -> list[B]:
            if callable(batches):
                return list(batches(epoch, rng))
            order = list(batches)
            rng.shuffle(order)
            return order

        first = epoch_batches(0)
        if not first:
            raise ValueError("no training batches: the dataset is empty")
        per_epoch = math.ceil(len(first) / self.cfg.grad_accum)
        total = max(1, math.ceil(per_epoch * self.cfg.epochs))
        if self.cfg.max_steps is not None:
            total = min(total, self.cfg.max_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_lambda(total))
        # The scheduler stays unprepared: accelerate would step a prepared one once per process
        # per optimizer step, decaying the LR N times too fast under N processes.
        model, opt = acc.prepare(self.model, opt)
        model.train()

        curve: list[dict[str, float]] = []
        step, tokens, micro = 0, 0, 0
        stopped = "completed"
        t0 = time.perf_counter()
        epoch, current = 0, first
        running: dict[str, list[float]] = {}
        while step < total:
            for batch in current:
                with acc.accumulate(model), acc.autocast(), attention_kernel(acc.device):
                    out = self.loss_fn(model, _to_device(batch, acc.device))
                    loss = out.loss
                    if not torch.isfinite(loss.detach()).all():
                        raise TrainingDivergedError(
                            f"loss became {loss.item()} at step {step} (epoch {epoch}); lower the "
                            "learning rate, raise warmup, or enable clipping (max_grad_norm)"
                        )
                    acc.backward(loss)
                    if acc.sync_gradients and self.cfg.max_grad_norm is not None:
                        acc.clip_grad_norm_(params, self.cfg.max_grad_norm)
                    opt.step()
                    if acc.sync_gradients:
                        sched.step()
                    opt.zero_grad(set_to_none=True)
                tokens += self.count_tokens(batch)
                micro += 1
                running.setdefault("loss", []).append(float(acc.reduce(loss.detach(), "mean")))
                for k, v in out.logs.items():
                    running.setdefault(k, []).append(float(v))
                if micro % self.cfg.grad_accum:
                    continue
                step += 1
                if step % self.cfg.log_every == 0 or step == total:
                    row = {k: sum(v) / len(v) for k, v in running.items()}
                    row.update(step=step, epoch=epoch, lr=float(sched.get_last_lr()[0]))
                    curve.append(row)
                    running = {}
                    for cb in self.callbacks:
                        reason = cb(step, row)
                        if reason:
                            stopped = reason
                            total = step
                if self.cfg.checkpoint_every and self.checkpoint_dir and step % self.cfg.checkpoint_every == 0:
                    self._checkpoint(acc, model, step)
                if step >= total:
                    break
            epoch += 1
            if step < total:
                current = epoch_batches(epoch)
        if stopped == "completed" and self.cfg.max_steps is not None and step >= self.cfg.max_steps:
            stopped = "max_steps"
        self.model = acc.unwrap_model(model)
        self.model.eval()
        return TrainResult(step, tokens, time.perf_counter() - t0, curve, stopped)

    def _lr_lambda(self, total: int) -> Callable[[int], float]:
        warm = int(self.cfg.warmup_ratio * total)
        kind = self.cfg.schedule

        def f(s: int) -> float:
            if s < warm:
                return (s + 1) / (warm + 1)
            if kind == "constant":
                return 1.0
            frac = (s - warm) / max(1, total - warm)
            return max(0.0, 1.0 - frac) if kind == "linear" else 0.5 * (1 + math.cos(math.pi * frac))

        return f

    def _checkpoint(self, acc: Any, model: Any, step: int) -> None:
        from obliviate.paths import atomic_dir

        if self.checkpoint_dir is None:
            return
        # Collective under FSDP / ZeRO-3 (gathers shards): every rank calls it, one rank writes.
        state = acc.get_state_dict(model)
        if acc.is_main_process:
            step_dir = self.checkpoint_dir / f"step-{step:06d}"
            with atomic_dir(step_dir, "checkpoint", overwrite=True) as tmp:
                acc.unwrap_model(model).save_pretrained(tmp, state_dict=state, safe_serialization=True)
        acc.wait_for_everyone()


def _make_accelerator(mixed_precision: str, grad_accum: int) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    # accelerate keeps one process-wide state and refuses a second Accelerator with another
    # precision (fine-tune in fp32, then unlearn in bf16, say). Resetting the accelerator state
    # (not the partial state holding the process group) is safe in single and multi-process runs.
    if AcceleratorState._shared_state:
        AcceleratorState._reset_state(reset_partial_state=False)
    # Without cpu=True, torchrun-launched CPU processes each get a single-process state and would
    # silently train independently instead of all-reducing gradients over gloo.
    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    cpu = multi and not torch.cuda.is_available()
    del PartialState
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=grad_accum, cpu=cpu)


def attention_kernel(device: torch.device) -> AbstractContextManager[Any]:
    """The scaled-dot-product-attention backend for a training step on `device`. On CPU, torch's
    flash-attention kernel has a slow backward at the short sequences we train on (6 ms per layer
    per step for SmolLM2-135M, batch 8 x ~65 tokens); the plain-matmul ("math") backend, which
    computes bf16 inputs in fp32, makes the backward pass ~25% and a fine-tuning step ~10% faster.
    GPUs keep torch's own choice (flash / memory-efficient kernels win there)."""
    return sdpa_kernel(SDPBackend.MATH) if device.type == "cpu" else nullcontext()


def bf16_autocast(device: torch.device, enabled: bool) -> AbstractContextManager[Any]:
    """bf16 autocast on `device` when `enabled`: the training precision, also used for the no-grad
    reference passes (rehearsal top-k, NPO's log-probs) so their values start exactly equal."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _to_device(batch: Any, device: torch.device) -> Any:
    return batch.to(device) if hasattr(batch, "to") else batch


def train(
    model: Any,
    batches: BatchSource[B],
    loss_fn: Callable[[Any, B], StepOutput],
    cfg: TrainConfig,
    *,
    callbacks: Iterable[Callback] = (),
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Train `model` in place on `batches` with `loss_fn`; returns the curve and throughput."""
    return Trainer(model, loss_fn, cfg, list(callbacks), checkpoint_dir).run(batches)
