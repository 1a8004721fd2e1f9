"""Directional ablation: find the direction unlearning added to the residual stream, remove it.

Arditi et al. 2024 ("Refusal in language models is mediated by a single direction") show that a
behaviour such as refusal lives along one direction r of the residual stream and disappears
when every activation is projected off it, a <- a - (a.r^)r^. Łucki et al. 2024 ("An
adversarial perspective on machine unlearning for AI safety") apply this to unlearning: the
difference of mean activations between the original and the unlearned model on forget prompts
gives a direction whose ablation restores much of the "removed" knowledge.

Here, at each hooked decoder layer l: r_l = mean_x h_l^target(x) - mean_x h_l^model(x) over
forget prompts (token-averaged block outputs), and the model under attack runs with a forward
hook projecting r^_l out of that block's output at every position. The prompts are the held-aside
relearning facts' questions when there are enough of them (never the probes' answers; only
prompts are used), else the probed questions. The oracle gets the same treatment with its own
direction (target - oracle): whatever removing that direction does to the oracle is the control.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from pydantic import Field

from obliviate.attacks.base import (
    Attack,
    AttackConfig,
    AttackContext,
    AttackResult,
    Cell,
    decoder_layers,
    hf_parts,
    innermost,
    rebuild_lm,
)
from obliviate.data.schema import World
from obliviate.models.lm import LM, Prompt
from obliviate.registry import attack

LayerSet = Literal["all", "middle", "early", "late"]


class AblationConfig(AttackConfig):
    layer_sets: list[LayerSet] = Field(
        default_factory=lambda: list[LayerSet](["all", "middle"]), min_length=1,
        description="which blocks to hook: all, or the early / middle / late third",
    )
    min_prompts: int = Field(4, ge=1, description="use held-aside facts' prompts if at least this many")


def pick_layers(n: int, which: LayerSet) -> list[int]:
    if which == "all":
        return list(range(n))
    third = max(1, n // 3)
    start = {"early": 0, "middle": third, "late": n - third}[which]
    return list(range(start, min(n, start + third)))


def _out(o: Any) -> torch.Tensor:
    return o if torch.is_tensor(o) else o[0]


def mean_block_outputs(lm: Any, prompts: Sequence[Prompt], layers: Sequence[int]) -> torch.Tensor:
    """Output of each block in `layers`, averaged over each prompt's tokens, then over prompts:
    shape (len(layers), hidden). Prompts are encoded exactly as the LM encodes them."""
    inner = innermost(lm)
    blocks = decoder_layers(inner.model)
    acts: dict[int, torch.Tensor] = {}

    def grab(pos: int) -> Any:
        def hook(_m: Any, _i: Any, o: Any) -> None:
            acts[pos] = _out(o)[0].float().mean(dim=0)
        return hook

    sums = torch.zeros(len(layers), inner.model.config.hidden_size)
    handles = [blocks[i].register_forward_hook(grab(j)) for j, i in enumerate(layers)]
    try:
        with torch.inference_mode():
            for p in prompts:
                inner.model(input_ids=torch.tensor([inner.encode_prompt(p)]), use_cache=False, logits_to_keep=1)
                sums += torch.stack([acts[j] for j in range(len(layers))])
    finally:
        for h in handles:
            h.remove()
    return sums / max(len(prompts), 1)


@contextmanager
def ablated(model: Any, directions: dict[int, torch.Tensor]) -> Iterator[None]:
    """Within the block, every listed block's output is projected off its unit direction."""
    blocks = decoder_layers(model)

    def hook_for(r: torch.Tensor) -> Any:
        def hook(_m: Any, _i: Any, o: Any) -> Any:
            h = _out(o)
            u = r.to(h.dtype)
            h2 = h - (h @ u).unsqueeze(-1) * u
            return h2 if torch.is_tensor(o) else (h2, *o[1:])
        return hook

    units = {i: d / d.norm().clamp(min=1e-12) for i, d in directions.items()}
    handles = [blocks[i].register_forward_hook(hook_for(u)) for i, u in units.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@attack("ablation")
class Ablation(Attack):
    """Project the (target - model) mean-activation difference out of chosen blocks."""

    name = "ablation"
    Config = AblationConfig
    transforms = "representation"

    def run(self, model: LM, world: World, ctx: AttackContext) -> AttackResult:
        t0 = time.perf_counter()
        if ctx.target is None:
            return self.result(model, [], t0, ["skipped: directional ablation needs the target model"])
        hf, _ = hf_parts(model)
        n = len(decoder_layers(hf))
        source = ctx.relearn_pool if len(ctx.relearn_pool) >= self.config.min_prompts else ctx.probes
        prompts = [Prompt(f.question) for f in source]
        cells = []
        for which in self.config.layer_sets:
            t1 = time.perf_counter()
            layers = pick_layers(n, which)
            diff = mean_block_outputs(ctx.target, prompts, layers) - mean_block_outputs(model, prompts, layers)
            directions = {li: diff[j] for j, li in enumerate(layers)}
            # A fresh LM over the same weights: the hooks change outputs without touching the
            # weights, so a cached LM would not notice.
            alm = rebuild_lm(model, hf, f"{getattr(model, 'name', 'model')}+ablation[{which}]")
            with ablated(hf, directions):
                scores, samples, util, detail = ctx.plain_probe_and_utility(alm)
            cells.append(Cell(setting=which, params={"layers": layers}, scores=scores, samples=samples,
                              utility=util, utility_detail=detail, wall_s=time.perf_counter() - t1,
                              info={"direction_norms": [round(float(d.norm()), 4) for d in diff],
                                    "prompts_from": "relearn_pool" if source is ctx.relearn_pool else "probes"}))
        return self.result(model, cells, t0)
