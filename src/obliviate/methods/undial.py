"""UNDIAL (Dong et al. 2024, "UNDIAL: Self-Distillation with Adjusted Logits for Robust
Unlearning in Large Language Models").

Self-distillation on forget answers towards the reference distribution with the true token's
logit lowered by β:  target_t = softmax(z_ref,t − β·onehot(y_t)),  L_f = E_t CE(target_t, π_θ).
The target is fixed, so unlike gradient ascent the loss is bounded and cannot run away; the
rest of the distribution (what else the model would say) is preserved. The original uses no
retain data (retain_weight=0 by default); a retain term can be added as in gradient difference.

The reference logits of every forget answer token are computed once before training and kept in
fp16 (|answer tokens| × vocabulary); above `max_cache_mb` a frozen copy computes them per step.
One deliberate difference: positions whose true token is a special token (the chat template's
end-of-turn) keep the reference distribution (β = 0 there). Lowering the end-of-turn logit teaches
the model never to stop, and its answers then run on into invented "user" turns: a fluency
failure that says nothing about whether the fact was forgotten.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from obliviate.methods.base import Context, MethodConfig, UnlearnData, frozen_copy, iter_batches
from obliviate.methods.grad_diff import GradDiff, RetainTermConfig
from obliviate.registry import method
from obliviate.train.batch import ForgetRetainBatch
from obliviate.train.losses import answer_logits


class UndialConfig(RetainTermConfig):
    beta: float = Field(
        10.0, ge=0.0, le=1e3, description="how far the true token's logit is lowered"
    )
    retain_weight: float = Field(
        0.0, ge=0.0, le=1e4, description="alpha: weight of the retain term"
    )
    max_cache_mb: float = Field(
        2048.0,
        ge=0.0,
        description="largest cache of reference logits; above it, a frozen copy is used",
    )


def undial_targets(
    ref_logits: torch.Tensor, labels: torch.Tensor, beta: float | torch.Tensor
) -> torch.Tensor:
    """softmax(z_ref − β·onehot(y)) over the vocabulary; ref_logits (N, V), labels (N,), β a
    scalar or one value per position."""
    b = torch.as_tensor(beta, dtype=torch.float32, device=ref_logits.device).reshape(-1, 1)
    adjusted = ref_logits.float() - b * F.one_hot(labels, ref_logits.shape[-1]).float()
    return torch.softmax(adjusted, dim=-1)


def undial_loss(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    labels: torch.Tensor,
    beta: float | torch.Tensor,
) -> torch.Tensor:
    """Mean over positions of the cross-entropy from the adjusted targets to the model, (N, V)."""
    target = undial_targets(ref_logits, labels, beta)
    return -(target * torch.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


@method("undial")
class Undial(GradDiff):
    name = "undial"
    Config: ClassVar[type[MethodConfig]] = UndialConfig
    train_defaults: ClassVar[dict[str, Any]] = {
        "lr": 3e-5,
        "max_steps": 20,
        "epochs": 1000.0,
        "schedule": "constant",
    }

    @property
    def needs_reference(self) -> bool:
        return True

    def prepare(self, model: Any, data: UnlearnData, ctx: Context) -> Any:
        model = super().prepare(model, data, ctx)
        special = sorted(set(getattr(ctx.tokenizer, "all_special_ids", []) or []))
        self.special_ids = torch.tensor(special, dtype=torch.long, device=ctx.device)
        n_tok = sum(len(a) for _, a in data.forget)
        vocab = int(model.get_output_embeddings().weight.shape[0])
        self.cache: list[torch.Tensor] | None = None
        self.frozen: Any = None
        if n_tok * vocab * 2 / 2**20 > self.config.max_cache_mb:
            self.frozen = frozen_copy(model)
            ctx.notes["undial_reference"] = "frozen copy (cache over budget)"
            return model
        self.cache = [torch.empty(0)] * len(data.forget)
        model.eval()
        with torch.no_grad(), ctx.autocast():
            for b in iter_batches(data.forget, data.pad_id, 8):
                b = b.to(ctx.device)
                logits, labels, _ = answer_logits(model, b)
                for row, i in enumerate(b.index.tolist()):
                    self.cache[i] = logits[row][labels[row] != -100].to(torch.float16)
        model.train()
        ctx.notes["undial_reference"] = f"cached fp16 logits of {n_tok} answer tokens"
        return model

    def forget_loss(
        self, model: Any, batch: ForgetRetainBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        logits, labels, _ = answer_logits(model, batch.forget)
        mask = labels != -100
        if self.cache is not None:
            ref = torch.cat([self.cache[i].float() for i in batch.forget.index.tolist()]).to(
                logits.device
            )
        else:
            with torch.no_grad():
                ref = answer_logits(self.frozen, batch.forget)[0][mask]
        sel, y = logits[mask], labels[mask]
        nll = F.cross_entropy(sel.float(), y)
        beta = self.config.beta * (~torch.isin(y, self.special_ids.to(y.device))).float()
        return undial_loss(sel, ref, y, beta), {"forget_nll": float(nll.detach())}
