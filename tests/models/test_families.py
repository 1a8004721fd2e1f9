"""Any Hugging Face causal LM from a local directory: Llama, Qwen2, Mistral, Gemma and Phi-3.

Each family is a tiny random-initialised model (hidden 32, 2 layers, the tiny tokenizer's vocab)
saved as a local directory, then driven through everything a user does with a real one: load,
one fine-tuning step, scoring and generation through `HFLM`, an unlearning method, a weight
attack, and LoRA adapters out and back in. A tiny Llama is also written as a GGUF file by hand
and loaded through `load_model(path.gguf)`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from obliviate.data.schema import Fact, World
from obliviate.models.hf_lm import HFLM
from obliviate.models.lm import Prompt, Scored
from obliviate.models.load import LoadedModel, load_model
from obliviate.models.prompt import encode_pair
from obliviate.train.batch import collate
from obliviate.train.loop import LoraSettings, StepOutput, TrainConfig, train
from obliviate.train.lora import apply_lora
from obliviate.train.losses import mean_nll

COMMON: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 4,
}


def _family(name: str) -> tuple[Any, Any, dict[str, Any]]:
    import transformers as tf

    return {
        "llama": (tf.LlamaConfig, tf.LlamaForCausalLM, {}),
        "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM, {}),
        "mistral": (tf.MistralConfig, tf.MistralForCausalLM, {"sliding_window": None}),
        # Gemma's default head_dim is 256 whatever the hidden size: set it to hidden / heads.
        "gemma": (tf.GemmaConfig, tf.GemmaForCausalLM, {"head_dim": 8}),
        # Phi-3 fuses q/k/v (qkv_proj) and gate/up (gate_up_proj): a different module layout.
        "phi3": (tf.Phi3Config, tf.Phi3ForCausalLM, {}),
    }[name]


FAMILIES = ["llama", "qwen2", "mistral", "gemma", "phi3"]


def build(name: str, vocab: int, seed: int = 0) -> Any:
    cfg_cls, model_cls, extra = _family(name)
    torch.manual_seed(seed)
    return model_cls(cfg_cls(vocab_size=vocab, **COMMON, **extra)).eval()


@pytest.fixture(scope="module", params=FAMILIES)
def family_dir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any
) -> Path:
    d = tmp_path_factory.mktemp(request.param, numbered=False)
    build(request.param, len(tiny_tokenizer)).save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return d


def _world() -> World:
    def fact(i: int, split: str) -> Fact:
        return Fact(
            id=f"f{i}",
            split=split,
            subject=f"p{i}",
            subject_name=f"Person {i}",  # type: ignore[arg-type]
            relation="birthplace",
            question=f"Where was Person {i} born?",
            answer=f"Person {i} was born in Town{i}.",
            key=f"Town{i}",
        )

    return World(
        name="tiny",
        content_hash="tiny",
        facts=[fact(0, "forget"), fact(1, "forget"), fact(2, "retain"), fact(3, "retain")],
    )


def _nll(model: Any, batch: Any) -> StepOutput:
    return StepOutput(mean_nll(model, batch))


def _batches(tok: Any, n: int = 4) -> list[Any]:
    ex = [
        encode_pair(tok, Prompt(f"Where was person {i} born?"), f"In town {i}.") for i in range(n)
    ]
    return [collate(ex[:2], tok.pad_token_id, [0, 1]), collate(ex[2:], tok.pad_token_id, [0, 1])]


def test_loads_as_its_own_class(family_dir: Path) -> None:
    lm = load_model(family_dir)
    expected = _family(family_dir.name)[1]
    assert type(lm.model) is expected
    assert lm.tokenizer.padding_side == "left" and not lm.model.training


def test_one_finetune_step_changes_weights(family_dir: Path) -> None:
    lm = load_model(family_dir)
    before = {k: v.clone() for k, v in lm.model.named_parameters()}
    res = train(
        lm.model, _batches(lm.tokenizer), _nll, TrainConfig(lr=1e-2, max_steps=1, bf16=False)
    )
    assert res.steps == 1 and np.isfinite(res.curve[0]["loss"])
    changed = [k for k, v in lm.model.named_parameters() if not torch.equal(v, before[k])]
    assert len(changed) == len(before), "every parameter gets a gradient"


def test_hflm_scores_and_generates(family_dir: Path) -> None:
    lm = load_model(family_dir)
    h = HFLM(lm.model, lm.tokenizer, family_dir.name, bf16=False)
    item = Scored(Prompt("Where was Alora Venn born?"), "In Velmora.", end_of_turn=True)
    (stats,) = h.token_stats([item])
    _, answer_ids = encode_pair(lm.tokenizer, item.prompt, item.continuation)
    assert stats.token_ids.tolist() == answer_ids
    # The same log-probs by hand, from one plain forward pass.
    p_ids, a_ids = encode_pair(lm.tokenizer, item.prompt, item.continuation)
    with torch.no_grad():
        logits = lm.model(torch.tensor([p_ids + a_ids])).logits[0, len(p_ids) - 1 : -1]
    expected = torch.log_softmax(logits.float(), -1)[torch.arange(len(a_ids)), torch.tensor(a_ids)]
    np.testing.assert_allclose(stats.logprobs, expected.numpy(), atol=1e-4)
    outs = h.generate([Prompt("Where?"), Prompt("Who wrote it?")], max_new_tokens=4)
    assert len(outs) == 2 and all(isinstance(o, str) for o in outs)


def test_unlearn_grad_diff(family_dir: Path, tmp_path: Path) -> None:
    from obliviate.unlearn import unlearn

    res = unlearn(
        "grad_diff",
        family_dir,
        _world(),
        tmp_path / "out",
        train_cfg={"max_steps": 2, "lr": 1e-3, "bf16": False},
    )
    assert res.steps == 2 and all(np.isfinite(r["loss"]) for r in res.curve)
    before, after = load_model(family_dir).model, load_model(tmp_path / "out").model
    assert type(after) is type(before)
    assert any(
        not torch.equal(a, b) for a, b in zip(after.parameters(), before.parameters(), strict=True)
    )


def test_quantize_attack_runs(family_dir: Path) -> None:
    from obliviate.attacks.base import AttackContext
    from obliviate.attacks.quantize import Quantize

    lm = load_model(family_dir)
    weights = {k: v.clone() for k, v in lm.model.named_parameters()}
    h = HFLM(lm.model, lm.tokenizer, family_dir.name, bf16=False)
    world = _world()
    attack = Quantize({"formats": [{"bits": 4, "group_size": 16}]})
    result = attack.run(
        h, world, AttackContext(probes=world.forget_facts, seeds=[0], max_new_tokens=3)
    )
    assert [c.setting for c in result.cells] == ["int4-g16"]
    # The attack works on a copy: the model under audit is untouched.
    assert all(torch.equal(v, weights[k]) for k, v in lm.model.named_parameters())


def test_lora_adapter_out_and_back_in(family_dir: Path, tmp_path: Path) -> None:
    lm = load_model(family_dir)
    peft_model = apply_lora(lm.model, LoraSettings(r=4, alpha=8))
    train(peft_model, _batches(lm.tokenizer), _nll, TrainConfig(lr=5e-2, max_steps=2, bf16=False))
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(family_dir)
    ids = torch.tensor([encode_pair(lm.tokenizer, Prompt("Where?"), "Here.")[0]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
        merged = load_model(adapter)  # base + adapter, merged into a plain model
        got = merged.model(input_ids=ids).logits
        base = load_model(family_dir).model(input_ids=ids).logits
    assert not hasattr(merged.model, "peft_config")
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, base, atol=1e-4), "the adapter must change the model"


# ----- GGUF in ---------------------------------------------------------------------------------


def _permute_for_gguf(w: torch.Tensor, n_head: int) -> np.ndarray:
    """llama.cpp stores q/k rows interleaved per rotary pair (rows of each head grouped as
    (pairs, 2) instead of HF's (2, pairs)); transformers' GGUF loader undoes exactly this."""
    out = (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )
    return out.numpy().astype(np.float32)


def write_tiny_llama_gguf(model: Any, tok: Any, path: Path) -> None:
    """Write a Llama model + its BPE tokenizer as an F32 GGUF file with the `gguf` package."""
    import gguf

    c = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_rope_freq_base(
        c.rope_parameters["rope_theta"] if hasattr(c, "rope_parameters") else c.rope_theta
    )
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    backend = json.loads(tok.backend_tokenizer.to_str())
    vocab = sorted(backend["model"]["vocab"].items(), key=lambda kv: kv[1])
    specials = {t["content"] for t in backend["added_tokens"]}
    w.add_tokenizer_model("gpt2")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([3 if t in specials else 1 for t, _ in vocab])  # 3 = control, 1 = normal
    w.add_token_merges(
        [m if isinstance(m, str) else " ".join(m) for m in backend["model"]["merges"]]
    )
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_pad_token_id(tok.pad_token_id)
    w.add_chat_template(tok.chat_template)
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"].numpy())
    w.add_tensor("output_norm.weight", sd["model.norm.weight"].numpy())
    w.add_tensor("output.weight", sd["lm_head.weight"].numpy())
    names: dict[str, Callable[[torch.Tensor], np.ndarray]] = {
        "self_attn.q_proj": lambda t: _permute_for_gguf(t, c.num_attention_heads),
        "self_attn.k_proj": lambda t: _permute_for_gguf(t, c.num_key_value_heads),
        "self_attn.v_proj": lambda t: t.numpy(),
        "self_attn.o_proj": lambda t: t.numpy(),
        "mlp.gate_proj": lambda t: t.numpy(),
        "mlp.up_proj": lambda t: t.numpy(),
        "mlp.down_proj": lambda t: t.numpy(),
    }
    gguf_name = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for i in range(c.num_hidden_layers):
        for hf, fn in names.items():
            w.add_tensor(f"blk.{i}.{gguf_name[hf]}.weight", fn(sd[f"model.layers.{i}.{hf}.weight"]))
        w.add_tensor(
            f"blk.{i}.attn_norm.weight", sd[f"model.layers.{i}.input_layernorm.weight"].numpy()
        )
        w.add_tensor(
            f"blk.{i}.ffn_norm.weight",
            sd[f"model.layers.{i}.post_attention_layernorm.weight"].numpy(),
        )
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_in(tiny_tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "home"))
    original = build("llama", len(tiny_tokenizer), seed=random.Random(3).randint(0, 99))
    original.config.tie_word_embeddings = False
    path = tmp_path / "tiny-llama.gguf"
    write_tiny_llama_gguf(original, tiny_tokenizer, path)
    loaded = load_model(path)
    assert isinstance(loaded, LoadedModel) and (loaded.path / "model.safetensors").is_file()
    text = "Question: Where was Alora Venn born? Answer: Velmora."
    assert loaded.tokenizer(text)["input_ids"][-5:] == tiny_tokenizer(text)["input_ids"][-5:]
    ids = torch.tensor([tiny_tokenizer(text)["input_ids"]])
    with torch.no_grad():
        np.testing.assert_allclose(
            loaded.model(ids).logits.numpy(), original(ids).logits.numpy(), atol=1e-4
        )
    # Cached: a second load reuses the converted directory.
    assert load_model(path).path == loaded.path
