"""ULD as a guard: an adapter over the ULD method's model (Ji et al. 2024, "Reversing the
Forget-Retain Objectives: An Efficient LLM Unlearning Framework from Logit Difference").

The `uld` unlearning method (`obliviate.methods.uld`) trains a small assistant to remember the
forget set and forget the retain set, and saves target + assistant as a ULD directory. This guard
puts that pair behind the `LM` protocol through the guards' decoding engine, combining the logits
at every step exactly as `methods.uld_model.combine_logits` does (one definition of ULD):

    z = z_target + w·a,  a = the assistant's log-probs centred over the plausible set
    {y : p_target(y) ≥ τ · max p_target}, 0 elsewhere;  w ≈ −0.8, τ = 0.01.

Why an adapter rather than `HFLM(ULDModel)`: HFLM scores through the model's decoder submodule
and decodes with a KV cache, neither of which `ULDModel` offers; the engine runs both models in
lock step, each KV-cached, and composes with the other logit guards (e.g. MemFree on ULD).

Build it from a ULD directory (`ULD.from_dir(path)`), or wrap a target `LM` with an assistant
(`ULD(target, assistant=...)`, an HFLM or a model directory sharing the target's vocabulary).
Scoring: under the combined logits (`scoring="guarded"`, the default), as the paper evaluates it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from obliviate.methods.guards.base import GuardConfigError, LogitGuard, Scoring, plan_of
from obliviate.methods.guards.decoding import Processor, StepContext, Stream
from obliviate.models.lm import LM
from obliviate.registry import guard


class ULDProcessor(Processor):
    def __init__(self, stream: Stream, weight: float, plausibility: float) -> None:
        self.aux_streams = (stream,)
        self.weight, self.plausibility = weight, plausibility

    def __call__(
        self, logits: torch.Tensor, ctx: StepContext, aux: list[torch.Tensor]
    ) -> torch.Tensor:
        from obliviate.methods.uld_model import combine_logits

        (assistant,) = aux
        if assistant.shape[-1] != logits.shape[-1]:
            raise GuardConfigError(
                f"ULD assistant has {assistant.shape[-1]} output logits, "
                f"the target {logits.shape[-1]}"
            )
        combined = combine_logits(logits, assistant, self.weight, self.plausibility)
        # Tokens an inner guard forbade stay forbidden.
        return torch.where(torch.isfinite(logits), combined, logits)


@guard("uld")
class ULD(LogitGuard):
    """Combine the target's logits with a forget-trained assistant's, z_t + w·z_a.

    Args:
        assistant: the assistant model (an HFLM or a model directory / bundled name).
        weight: w, negative (−0.8 in the paper); 0 is refused (it would be the target alone).
        plausibility: τ, the fraction of the target's max probability a token needs.
    """

    kind = "uld"
    default_scoring = "guarded"

    def __init__(
        self,
        inner: LM,
        *,
        assistant: LM | str | Path,
        weight: float = -0.8,
        plausibility: float = 0.01,
        scoring: Scoring | None = None,
        name: str | None = None,
        batch_size: int = 16,
    ) -> None:
        super().__init__(inner, scoring=scoring, name=name, batch_size=batch_size)
        if isinstance(assistant, str | Path):
            from obliviate.models.hf_lm import HFLM

            assistant = HFLM.from_pretrained(str(assistant))
        if not weight < 0:
            raise GuardConfigError(
                f"ULD weight must be negative (the assistant is subtracted), got {weight}"
            )
        if not 0.0 < plausibility <= 1.0:
            raise GuardConfigError(f"ULD plausibility must be in (0, 1], got {plausibility}")
        helper = plan_of(assistant, who="the ULD assistant")
        if helper.processors:
            raise GuardConfigError("the ULD assistant must be a plain model, not a guard stack")
        target = self._base_plan.main.backend
        a_tok, t_tok = helper.main.backend.tokenizer, target.tokenizer
        if a_tok.get_vocab() != t_tok.get_vocab():
            raise GuardConfigError(
                "the ULD assistant's tokenizer differs from the target's; the logit difference is "
                "only defined over a shared vocabulary (build the assistant from the target)"
            )
        self.assistant = assistant
        self.weight, self.plausibility = float(weight), float(plausibility)
        self._processor = ULDProcessor(helper.main, self.weight, self.plausibility)

    @classmethod
    def from_world(cls, inner: LM, world: Any, **kwargs: Any) -> ULD:
        if "assistant" not in kwargs:
            raise GuardConfigError(
                "ULD needs an assistant trained to remember the forget set and forget the retain "
                "set: pass assistant=<HFLM or model dir>, or load a ULD directory written by the "
                "'uld' method with ULD.from_dir(path)"
            )
        return cls(inner, **kwargs)

    @classmethod
    def from_dir(cls, path: str | Path, *, name: str | None = None, bf16: bool = True, **kwargs: Any) -> ULD:
        """The LM of a ULD directory written by the `uld` method (target/, assistant/, uld.json);
        its saved weight and plausibility threshold are used unless overridden. `bf16` is the
        HFLM precision setting of both models (False: exact fp32 decoding)."""
        from obliviate.methods.uld_model import load_uld
        from obliviate.models.hf_lm import HFLM

        loaded = load_uld(path)
        uld_model = loaded.model
        target = HFLM(uld_model.target, loaded.tokenizer, name=f"{Path(path).name}/target", bf16=bf16)
        assistant = HFLM(uld_model.assistant, loaded.tokenizer, name=f"{Path(path).name}/assistant", bf16=bf16)
        kwargs.setdefault("weight", uld_model.weight)
        kwargs.setdefault("plausibility", uld_model.relative_top)
        return cls(target, assistant=assistant, name=name or f"uld({Path(path).name})", **kwargs)

    def processor(self) -> Processor:
        return self._processor

    def clear_cache(self) -> None:
        super().clear_cache()
        clear = getattr(self.assistant, "clear_cache", None)
        if callable(clear):
            clear()

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "assistant": self.assistant.name,
            "weight": self.weight,
            "plausibility": self.plausibility,
        }
