"""Relearning: fine-tune the unlearned model on a few examples, then probe *other* forget facts.

Hu et al. 2024 ("Jogging the memory of unlearned LLMs through targeted relearning attacks"),
Łucki et al. 2024 ("An adversarial perspective on machine unlearning for AI safety": 10
unrelated examples recover most of RMU's removed knowledge) and Deeb & Roger 2024 ("Do
unlearning methods remove information from language model weights?": relearn on one part of
the forget set, test on a disjoint part). Knowledge that was truly removed has to be learned
again from the examples themselves, so it cannot come back for facts the examples do not state;
knowledge that was only hidden comes back for all of them.

Data, always disjoint from the probes (the audit holds a relearning pool aside, see
`base.split_probes`, and every example is checked against every probe with `base.leaks`):
- `forget_qa`: k held-aside forget facts as question -> answer pairs;
- `forget_text`: the same facts' answer sentences as plain text (passage-style). The world's
  biography passages are not used: each states all of a person's facts, probes included;
- `benign`: k unrelated items (general knowledge if the world has it, else retain facts that
  are not utility probes), which the target already knew.

Full fine-tuning or LoRA, over a learning-rate grid and seeds (the seed picks the k examples
and the batch order). Training goes through THE training loop (`obliviate.train.loop.train`).
The oracle is relearned identically: what it learns from k examples is the control.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

from pydantic import Field

from obliviate.attacks.base import (
    Attack,
    AttackConfig,
    AttackContext,
    AttackResult,
    Cell,
    clone_model,
    hf_parts,
    leaks,
    rebuild_lm,
)
from obliviate.data.schema import World
from obliviate.models.lm import LM, Prompt
from obliviate.registry import attack
from obliviate.train.batch import Example
from obliviate.train.loop import LoraSettings, TrainConfig

Data = Literal["forget_qa", "forget_text", "benign"]


class RelearnSetting(AttackConfig):
    k: int = Field(ge=1, description="number of relearning examples")
    lr: float = Field(gt=0, description="learning rate (AdamW, constant)")
    mode: Literal["full", "lora"] = Field("full", description="train all weights or a LoRA adapter")
    data: Data = Field("forget_qa", description="what the examples are (see module docstring)")

    @property
    def label(self) -> str:
        return f"{self.data},k={self.k},{self.mode},lr={self.lr:.0e}"


def grid(ks: list[int], lrs: list[float], modes: list[str] | None = None,
         data: list[str] | None = None) -> list[RelearnSetting]:
    """The product of the given values as settings (a convenience for configs)."""
    return [RelearnSetting(k=k, lr=lr, mode=m, data=d)  # type: ignore[arg-type]
            for d in (data or ["forget_qa"]) for m in (modes or ["full"]) for k in ks for lr in lrs]


def _default_settings() -> list[RelearnSetting]:
    # k grid at one LR, an LR grid at k=5, LoRA, passage-style text and unrelated benign data.
    return [
        *grid([1, 5, 10], [1e-4]),
        RelearnSetting(k=5, lr=3e-5),
        RelearnSetting(k=5, lr=1e-3, mode="lora"),
        RelearnSetting(k=5, lr=1e-4, data="forget_text"),
        RelearnSetting(k=10, lr=1e-4, data="benign"),
    ]


class RelearnConfig(AttackConfig):
    settings: list[RelearnSetting] = Field(default_factory=_default_settings, min_length=1,
                                           description="relearning runs, each repeated per seed")
    steps: int = Field(8, ge=1, description="optimizer steps per run")
    batch_size: int = Field(5, ge=1, description="examples per step (fewer when k is smaller)")
    lora: LoraSettings = Field(default_factory=lambda: LoraSettings(r=8, alpha=16),
                               description="adapter settings for mode=lora")
    max_seeds: int = Field(3, ge=1, description="use at most this many of the audit's seeds")

    @property
    def max_k(self) -> int:
        """Held-aside forget facts the settings need (the audit's relearning pool size)."""
        return max((s.k for s in self.settings if s.data != "benign"), default=0)


def relearn_examples(setting: RelearnSetting, world: World, ctx: AttackContext, seed: int,
                     tokenizer: Any) -> tuple[list[Example], list[str]]:
    """(token examples, ids of the items used) for one run; checked disjoint from the probes."""
    from obliviate.models.prompt import encode_pair

    rng = random.Random(f"relearn|{setting.data}|{seed}")
    if setting.data == "benign":
        used = {it.id for it in ctx.utility_items}
        pool = [(g.id, g.question, g.answer) for g in world.general if g.id not in used]
        pool += [(f.id, f.question, f.answer) for f in sorted(world.retain_facts, key=lambda f: f.id)
                 if f.id not in used]
    else:
        pool = [(f.id, f.question, f.answer) for f in ctx.relearn_pool]
    if setting.k > len(pool):
        raise ValueError(
            f"relearning with k={setting.k} {setting.data} examples needs {setting.k} held-aside items, "
            f"only {len(pool)} exist; the audit sizes the pool from the largest k it is given"
        )
    chosen = rng.sample(pool, setting.k)
    for _, q, a in chosen:
        bad = [f.id for f in ctx.probes if leaks(f"{q} {a}", f)]
        if bad:
            raise ValueError(f"relearning example {q!r} states probed facts {bad}: not disjoint")
    if setting.data == "forget_text":
        examples = [encode_pair(tokenizer, Prompt("", chat=False), a) for _, _, a in chosen]
    else:
        examples = [encode_pair(tokenizer, Prompt(q), a) for _, q, a in chosen]
    return examples, [i for i, _, _ in chosen]


@attack("relearn")
class Relearn(Attack):
    """Fine-tune on k held-aside forget examples (or benign text), probe the rest."""

    name = "relearn"
    Config = RelearnConfig
    transforms = "weights"
    seeded = True

    def run(self, model: LM, world: World, ctx: AttackContext) -> AttackResult:
        t0 = time.perf_counter()
        cells = [self._one(model, world, ctx, s, seed)
                 for s in self.config.settings for seed in ctx.seeds[: self.config.max_seeds]]
        return self.result(model, cells, t0)

    def _one(self, lm: LM, world: World, ctx: AttackContext, s: RelearnSetting, seed: int) -> Cell:
        from obliviate.train.finetune import make_batches, nll_step
        from obliviate.train.loop import train
        from obliviate.train.lora import apply_lora, merge_lora

        t0 = time.perf_counter()
        base, tok = hf_parts(lm)
        examples, used = relearn_examples(s, world, ctx, seed, tok)
        m = clone_model(base)
        for p in m.parameters():
            p.requires_grad_(s.mode == "full")
        if s.mode == "lora":
            m = apply_lora(m, self.config.lora)
        cfg = TrainConfig(lr=s.lr, max_steps=self.config.steps, epochs=float(self.config.steps),
                          schedule="constant", seed=seed, log_every=self.config.steps)
        batch = min(self.config.batch_size, len(examples))
        res = train(m, make_batches(examples, batch, tok.pad_token_id), nll_step, cfg)
        m = merge_lora(m).eval()
        alm = rebuild_lm(lm, m, f"{getattr(lm, 'name', 'model')}+relearn[{s.label},seed={seed}]")
        scores, samples, util, detail = ctx.plain_probe_and_utility(alm)
        ctx.say(f"relearn {s.label} seed={seed}: recovered {sum(scores.values()):.0f}/{len(scores)}")
        return Cell(setting=s.label, params=s.model_dump(), seed=seed, scores=scores, utility=util,
                    utility_detail=detail, samples=samples, wall_s=time.perf_counter() - t0,
                    info={"trained_on": used, "final_loss": res.curve[-1]["loss"] if res.curve else None,
                          "steps": res.steps})
