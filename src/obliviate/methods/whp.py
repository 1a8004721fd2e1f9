"""Who's Harry Potter (Eldan & Russinovich 2023, "Who's Harry Potter? Approximate Unlearning
in LLMs").

1. Reinforce: fine-tune a copy of the model further on the forget set, so that whatever is
   specific to it becomes more likely still.
2. Generic predictions: at each forget answer position, the logits
       v_generic = v_base − α·ReLU(v_reinforced − v_base)
   lower exactly the tokens the reinforced model boosted; their argmax is the "generic" label.
3. Fine-tune the model on the forget inputs towards those generic labels (plus, optionally,
   retain NLL as in gradient difference).

The paper also swaps anchored terms for generic ones with a GPT-4-made dictionary before
step 2; obliviate has no such dictionary and uses the logit step alone. Labels are computed
once in `prepare` (teacher-forced on the true prefix, as in the paper) and the reinforced copy
is freed before unlearning starts.
"""

from __future__ import annotations

import gc
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field

from obliviate.methods.base import Context, MethodConfig, UnlearnData, frozen_copy, iter_batches
from obliviate.methods.grad_diff import GradDiff, RetainTermConfig
from obliviate.registry import method
from obliviate.train.batch import IGNORE_INDEX, ForgetRetainBatch
from obliviate.train.loop import StepOutput, TrainConfig, train
from obliviate.train.losses import answer_logits, mean_nll


class WHPConfig(RetainTermConfig):
    alpha: float = Field(5.0, ge=0.0, le=1e3, description="how hard boosted tokens are pushed down")
    reinforce_lr: float = Field(
        1e-4, gt=0.0, le=1.0, description="learning rate of the reinforcing fine-tune"
    )
    reinforce_steps: int = Field(
        10, ge=1, le=100000, description="steps of the reinforcing fine-tune"
    )
    retain_weight: float = Field(
        1.0, ge=0.0, le=1e4, description="alpha_r: weight of the retain term"
    )


def generic_logits(v_base: torch.Tensor, v_reinforced: torch.Tensor, alpha: float) -> torch.Tensor:
    """v_base − α·ReLU(v_reinforced − v_base)."""
    return v_base - alpha * F.relu(v_reinforced - v_base)


@method("whp")
class WHP(GradDiff):
    name = "whp"
    Config: ClassVar[type[MethodConfig]] = WHPConfig
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
        reinforced = frozen_copy(model)
        for p in reinforced.parameters():
            p.requires_grad_(True)
        batches = list(iter_batches(data.forget, data.pad_id, self.config.batch_size))
        cfg = TrainConfig.model_validate(
            {
                "lr": self.config.reinforce_lr,
                "max_steps": self.config.reinforce_steps,
                "epochs": 1e6,
                "schedule": "constant",
                "bf16": ctx.bf16,
                "seed": ctx.seed,
            }
        )
        res = train(reinforced, batches, lambda m, b: StepOutput(mean_nll(m, b)), cfg)
        ctx.notes["whp_reinforce"] = {
            "steps": res.steps,
            "final_nll": res.curve[-1]["loss"] if res.curve else None,
        }
        reinforced.eval()
        model.eval()
        self.labels: list[torch.Tensor] = [torch.empty(0)] * len(data.forget)
        changed, total = 0, 0
        with torch.no_grad(), ctx.autocast():
            for b in iter_batches(data.forget, data.pad_id, 8):
                b = b.to(ctx.device)
                base, labels, _ = answer_logits(model, b)
                reinf, _, _ = answer_logits(reinforced, b)
                generic = generic_logits(base.float(), reinf.float(), self.config.alpha).argmax(-1)
                for row, i in enumerate(b.index.tolist()):
                    m = labels[row] != IGNORE_INDEX
                    self.labels[i] = generic[row][m].clone()
                    changed += int((self.labels[i] != labels[row][m]).sum())
                    total += int(m.sum())
        del reinforced
        gc.collect()
        model.train()
        ctx.notes["whp_generic_label_changed_fraction"] = changed / max(total, 1)
        return model

    def forget_loss(
        self, model: Any, batch: ForgetRetainBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        logits, labels, _ = answer_logits(model, batch.forget)
        mask = labels != IGNORE_INDEX
        generic = torch.cat([self.labels[i] for i in batch.forget.index.tolist()]).to(logits.device)
        sel = logits[mask].float()
        loss = F.cross_entropy(sel, generic)
        nll = F.cross_entropy(sel, labels[mask])
        return loss, {"forget_nll": float(nll.detach())}
