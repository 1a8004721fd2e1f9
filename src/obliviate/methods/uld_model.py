"""The model ULD produces (Ji et al. 2024, "Reversing the Forget-Retain Objectives: An Efficient
LLM Unlearning Framework from Logit Difference"): the untouched target plus a small assistant
whose logits are subtracted where the target finds a token plausible.

    z = z_target + w·a,   a = centred log-softmax of the assistant on the plausible set, 0 elsewhere
    plausible(v)  ⇔  p_target(v) ≥ relative_top · max_v' p_target(v')

`ULDModel` is an `nn.Module` that looks like a Hugging Face causal LM to evaluation code:
`model(input_ids=…, attention_mask=…).logits` gives the combined logits at every position and
`generate(input_ids=…, attention_mask=…, max_new_tokens=…, do_sample=…)` decodes with them
(greedy or sampling, both models KV-cached). It saves as a directory holding `uld.json`,
`target/` and `assistant/` (and no top-level config.json, so a loader unaware of ULD fails loudly
instead of silently evaluating the target alone); `load_uld` reads it back.

Deliberate difference from the reference code, which adds w times the assistant's *raw* logits:
raw logits carry an arbitrary per-position offset, which the plausibility filter turns into a
shift of the plausible set against all other tokens. Centring the assistant's log-probs over the
plausible set removes that, so an assistant that is uniform (as it is trained to be on retain
data) changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from transformers.modeling_outputs import CausalLMOutputWithPast

ULD_FILE = "uld.json"
ULD_FORMAT = 1


def combine_logits(
    z_target: torch.Tensor, z_assistant: torch.Tensor, weight: float, relative_top: float
) -> torch.Tensor:
    """ULD's output logits (fp32) from target and assistant logits of the same shape (…, V)."""
    lp_t = torch.log_softmax(z_target.float(), dim=-1)
    plausible = lp_t >= lp_t.max(dim=-1, keepdim=True).values + math.log(relative_top)
    lp_a = torch.log_softmax(z_assistant.float(), dim=-1)
    mean_a = (lp_a * plausible).sum(-1, keepdim=True) / plausible.sum(-1, keepdim=True)
    offset = torch.where(plausible, lp_a - mean_a, torch.zeros_like(lp_a))
    return z_target.float() + weight * offset


def truncated_copy(model: Any, n_layers: int) -> Any:
    """A new causal LM made of the first `n_layers` decoder blocks of `model` (plus its
    embeddings, final norm and head): ULD's assistant, initialised from the target."""
    import copy

    from transformers import AutoModelForCausalLM

    cfg = copy.deepcopy(model.config)
    total = int(cfg.num_hidden_layers)
    if not 1 <= n_layers <= total:
        raise ValueError(f"assistant_layers must be between 1 and {total}, got {n_layers}")
    cfg.num_hidden_layers = n_layers
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = cfg.layer_types[:n_layers]
    small = AutoModelForCausalLM.from_config(cfg).to(dtype=next(model.parameters()).dtype)
    pat = re.compile(r"\.(?:layers|h)\.(\d+)\.")
    state = {
        k: v
        for k, v in model.state_dict().items()
        if not ((m := pat.search(k)) and int(m.group(1)) >= n_layers)
    }
    missing, unexpected = small.load_state_dict(state, strict=False)
    tied = (
        {k for k in missing if "lm_head" in k}
        if getattr(cfg, "tie_word_embeddings", False)
        else set()
    )
    if set(missing) - tied or unexpected:
        raise ValueError(
            f"cannot build the ULD assistant: missing {missing}, unexpected {unexpected}"
        )
    if tied:
        small.tie_weights()
    return small.to(next(model.parameters()).device)


class ULDModel(torch.nn.Module):
    """Target + assistant, combined at the logits; see the module docstring."""

    def __init__(
        self, target: Any, assistant: Any, weight: float = -0.8, relative_top: float = 0.01
    ) -> None:
        super().__init__()
        self.target = target
        self.assistant = assistant
        self.weight = float(weight)
        self.relative_top = float(relative_top)
        self.config = target.config
        self.generation_config = target.generation_config

    @property
    def device(self) -> torch.device:
        return next(self.target.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.target.parameters()).dtype

    def get_input_embeddings(self) -> Any:
        return self.target.get_input_embeddings()

    def get_output_embeddings(self) -> Any:
        return self.target.get_output_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Combined logits at every position (no cache: use `generate` for decoding)."""
        args = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "use_cache": False,
        }
        z_t = self.target(**args).logits
        z_a = self.assistant(**args).logits
        return CausalLMOutputWithPast(
            logits=combine_logits(z_t, z_a, self.weight, self.relative_top)
        )

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        stop_strings: list[str] | str | None = None,
        tokenizer: Any = None,
        **_ignored: Any,
    ) -> torch.Tensor:
        """Decode with the combined logits; returns (B, prompt + new) ids like HF `generate`.
        Unknown generation keywords (e.g. `generation_config`) are accepted and ignored."""
        from transformers import DynamicCache

        from obliviate.models.hf_lm import CACHE_ARG

        gc = self.generation_config
        eos = eos_token_id if eos_token_id is not None else getattr(gc, "eos_token_id", None)
        eos_ids = torch.tensor(
            [eos] if isinstance(eos, int) else list(eos or []), device=input_ids.device
        )
        pad = pad_token_id if pad_token_id is not None else getattr(gc, "pad_token_id", None)
        pad = int(pad if pad is not None else (eos_ids[0] if len(eos_ids) else 0))
        stops = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings or [])
        mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
        pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
        caches = (DynamicCache(), DynamicCache())
        step_ids, step_pos = input_ids, pos
        ids = input_ids
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        prompt_len = input_ids.shape[1]
        for _ in range(max_new_tokens):
            outs = [
                m(
                    input_ids=step_ids,
                    attention_mask=mask,
                    position_ids=step_pos,
                    **{CACHE_ARG: c},
                    use_cache=True,
                )
                for m, c in zip((self.target, self.assistant), caches)
            ]
            z = combine_logits(
                outs[0].logits[:, -1], outs[1].logits[:, -1], self.weight, self.relative_top
            )
            nxt = _sample(z, temperature, top_k, top_p) if do_sample else z.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            if len(eos_ids):
                done |= torch.isin(nxt, eos_ids)
            if stops and tokenizer is not None:
                texts = tokenizer.batch_decode(ids[:, prompt_len:], skip_special_tokens=True)
                done |= torch.tensor(
                    [any(s in t for s in stops) for t in texts], device=done.device
                )
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            step_ids, step_pos = nxt[:, None], step_pos[:, -1:] + 1
        return ids

    def save_pretrained(self, out_dir: str | Path, **kwargs: Any) -> None:
        """Write `uld.json`, `target/` and `assistant/` (safetensors) into `out_dir`."""
        out = Path(out_dir)
        kwargs.setdefault("safe_serialization", True)
        self.target.save_pretrained(out / "target", **kwargs)
        self.assistant.save_pretrained(out / "assistant", **kwargs)
        meta = {
            "format": ULD_FORMAT,
            "weight": self.weight,
            "relative_top": self.relative_top,
            "assistant_layers": int(self.assistant.config.num_hidden_layers),
            "paper": "Ji et al. 2024, Reversing the Forget-Retain Objectives (ULD)",
        }
        (out / ULD_FILE).write_text(json.dumps(meta, indent=2))


def is_uld_dir(path: str | Path) -> bool:
    return (Path(path) / ULD_FILE).is_file()


def load_uld(path: str | Path, dtype: Any = None) -> Any:
    """Load a ULD directory into a `LoadedModel` whose model is a `ULDModel`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from obliviate.models.load import LoadedModel, ModelLoadError

    p = Path(path)
    if not is_uld_dir(p):
        raise ModelLoadError(f"{p} is not a ULD model directory (no {ULD_FILE})")
    meta = json.loads((p / ULD_FILE).read_text())
    kw: dict[str, Any] = {
        "local_files_only": True,
        "use_safetensors": True,
        "dtype": dtype or torch.float32,
    }
    target = AutoModelForCausalLM.from_pretrained(p / "target", **kw).eval()
    assistant = AutoModelForCausalLM.from_pretrained(p / "assistant", **kw).eval()
    tok = AutoTokenizer.from_pretrained(p, local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if target.generation_config is not None and target.generation_config.pad_token_id is None:
        target.generation_config.pad_token_id = tok.pad_token_id
    model = ULDModel(target, assistant, meta["weight"], meta["relative_top"]).eval()
    return LoadedModel(model, tok, str(path), p)


def _sample(z: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    z = z / max(temperature, 1e-6)
    if top_k and top_k > 0:
        kth = torch.topk(z, min(top_k, z.shape[-1]), dim=-1).values[:, -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    if top_p < 1.0:
        sorted_z, order = torch.sort(z, descending=True, dim=-1)
        cum = torch.softmax(sorted_z, dim=-1).cumsum(-1)
        drop = cum - torch.softmax(sorted_z, dim=-1) > top_p  # keep the token that crosses top_p
        sorted_z = sorted_z.masked_fill(drop, float("-inf"))
        z = torch.full_like(z, float("-inf")).scatter(-1, order, sorted_z)
    return torch.multinomial(torch.softmax(z, dim=-1), 1).squeeze(-1)
