"""The engine: clear errors for bad input, the run log, sequential chains, LoRA, the guard."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from obliviate.data.schema import World
from obliviate.methods.base import MethodConfigError, MethodDataError
from obliviate.registry import UnknownComponentError
from obliviate.unlearn import LOG_FILE, CollapseGuard, UnlearningCollapseWarning, unlearn

FAST = {"max_steps": 2, "lr": 1e-3}


def test_unknown_method_suggests_the_closest(tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnknownComponentError, match="Did you mean: npo"):
        unlearn("nop", tiny_model_dir, tiny_world, tmp_path / "o")


def test_empty_forget_set(tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    empty = World(name="noforget", content_hash="x", facts=tiny_world.retain_facts)
    with pytest.raises(MethodDataError, match="forget set is empty"):
        unlearn("grad_ascent", tiny_model_dir, empty, tmp_path / "o")


def test_method_needing_retain_data_without_any(tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    only_forget = World(name="f", content_hash="x", facts=tiny_world.forget_facts)
    with pytest.raises(MethodDataError, match="needs retain data"):
        unlearn("grad_diff", tiny_model_dir, only_forget, tmp_path / "o")
    # ... and the same method runs once it is told not to use any
    res = unlearn(
        "npo",
        tiny_model_dir,
        only_forget,
        tmp_path / "o",
        config={"retain_weight": 0},
        train_cfg=FAST,
    )
    assert res.steps == 2


@pytest.mark.parametrize(
    ("name", "cfg", "match"),
    [
        ("npo", {"beta": -1}, r"beta: got -1: Input should be greater than 0"),
        ("rmu", {"layer": 1}, r"layer: got 1: .*greater than or equal to 2"),
        ("grad_diff", {"retain_loss": "mse"}, r"retain_loss: got 'mse'"),
        ("simnpo", {"mask_fraction": 1.5}, r"mask_fraction: got 1.5"),
        (
            "npo",
            {"betta": 0.1},
            r"(?s)betta: got 0.1: unknown field; did you mean: beta\?.*Known fields: .*beta",
        ),
    ],
)
def test_config_out_of_range(
    name: str, cfg: dict, match: str, tiny_model_dir, tiny_world, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MethodConfigError, match=match):
        unlearn(name, tiny_model_dir, tiny_world, tmp_path / "o", config=cfg)


def test_bad_train_config_and_mask_with_weight_decay(tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MethodConfigError, match="lr"):
        unlearn("npo", tiny_model_dir, tiny_world, tmp_path / "o", train_cfg={"lr": -1})
    with pytest.raises(MethodConfigError, match="weight_decay=0"):
        unlearn(
            "npo",
            tiny_model_dir,
            tiny_world,
            tmp_path / "o",
            config={"mask": "salun"},
            train_cfg={"weight_decay": 0.1},
        )


def test_refuses_to_overwrite_the_source(tiny_model_dir, tiny_world) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="would replace the input"):
        unlearn("grad_ascent", tiny_model_dir, tiny_world, tiny_model_dir, train_cfg=FAST)


def test_log_records_method_config_train_and_curve(
    tiny_model_dir, tiny_world_dir, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from obliviate.runlog import RunLog

    res = unlearn(
        "npo",
        tiny_model_dir,
        tiny_world_dir,
        tmp_path / "o",
        config={"beta": 0.2},
        train_cfg=FAST,
        seed=3,
    )
    log = RunLog.load(tmp_path / "o" / LOG_FILE)
    assert log.kind == "unlearn"
    method, train, _lora = log.components
    assert (method.kind, method.name, method.args) == ("methods", "npo", res.config) and res.config[
        "beta"
    ] == 0.2
    assert train.args["lr"] == 1e-3 and train.args["seed"] == 3 and train.args["max_steps"] == 2
    assert log.inputs["base_model"] == str(tiny_model_dir)
    assert log.inputs["world"]["content_hash"] == "tinyhash"
    assert log.inputs["chain"] == []
    assert [p.x for p in log.curves["forget_loss"]] == [1, 2]
    assert {"forget_loss", "retain_loss", "retain_nll", "loss"} <= set(log.curves)
    assert log.results["final/forget_loss"].value == pytest.approx(res.curve[-1]["forget_loss"])
    assert log.perf["steps"] == 2 and log.perf["tokens"] > 0
    assert (tmp_path / "o" / "model.safetensors").is_file()


def test_sequential_unlearning_records_the_chain(tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    unlearn("grad_diff", tiny_model_dir, tiny_world, tmp_path / "a", train_cfg=FAST)
    unlearn("npo", tmp_path / "a", tiny_world, tmp_path / "b", train_cfg=FAST)
    unlearn("simnpo", tmp_path / "b", tiny_world, tmp_path / "c", train_cfg=FAST)
    chain = json.loads((tmp_path / "c" / LOG_FILE).read_text())["inputs"]["chain"]
    assert [c["method"] for c in chain] == ["grad_diff", "npo"]
    assert chain[0]["base_model"] == str(tiny_model_dir)
    assert chain[1]["model_dir"] == str(tmp_path / "b") and chain[1]["base_model"] == str(
        tmp_path / "a"
    )


def test_collapse_guard_unit() -> None:
    g = CollapseGuard(factor=2.0)
    assert g(1, {"loss": 1.0}) is None  # rows without retain NLL are ignored
    assert g(1, {"retain_nll": 1.0}) is None  # the start
    assert g(2, {"retain_nll": 1.9}) is None
    with pytest.warns(UnlearningCollapseWarning, match="exceeds 2x"):
        assert g(3, {"retain_nll": 2.5}) is None  # warns, does not stop
    assert g.events[0]["step"] == 3 and g.messages
    stop = CollapseGuard(factor=2.0, stop=True)
    stop(1, {"retain_nll": 0.01})  # start floored at 0.5: 0.9 is no collapse
    assert stop(2, {"retain_nll": 0.9}) is None
    with pytest.warns(UnlearningCollapseWarning):
        assert "collapse guard" in (stop(3, {"retain_nll": 1.2}) or "")


def test_collapse_warning_recorded_in_log(tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnlearningCollapseWarning)
        res = unlearn(
            "grad_ascent",
            tiny_model_dir,
            tiny_world,
            tmp_path / "o",
            train_cfg={"max_steps": 6, "lr": 3e-2},
            collapse_factor=1.0,
            monitor_every=1,
        )
    log = json.loads((tmp_path / "o" / LOG_FILE).read_text())
    assert res.warnings and set(res.warnings) <= set(log["notes"])
    assert all("retain_nll" in row for row in res.curve)  # GA trains no retain term: monitored


@pytest.mark.parametrize("save_adapter", [False, True])
def test_lora(save_adapter: bool, tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from obliviate.models.load import load_model

    lora = {"r": 4, "alpha": 8}
    unlearn(
        "npo",
        tiny_model_dir,
        tiny_world,
        tmp_path / "o",
        lora=lora,
        save_adapter=save_adapter,
        train_cfg=FAST,
    )
    assert (tmp_path / "o" / "adapter_config.json").is_file() == save_adapter
    base = load_model(tiny_model_dir).model
    if save_adapter:
        from peft import PeftModel

        meta = json.loads((tmp_path / "o" / "adapter_config.json").read_text())
        assert meta["base_model_name_or_path"] == str(tiny_model_dir)
        got = PeftModel.from_pretrained(
            load_model(tiny_model_dir).model, tmp_path / "o"
        ).merge_and_unload()
    else:
        got = load_model(tmp_path / "o").model
    diff = [
        n for n, p in got.named_parameters() if not torch.equal(p, dict(base.named_parameters())[n])
    ]
    assert diff and all("proj" in n for n in diff)


def test_rmu_with_lora_trains_only_down_projection_adapters(
    tiny_model_dir, tiny_world, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    res = unlearn("rmu", tiny_model_dir, tiny_world, tmp_path / "o", lora={"r": 2}, train_cfg=FAST)
    assert res.notes["rmu_trained_layers"] == [0, 1, 2]


def test_uld_generates_and_reloads(tiny_model_dir, tiny_world, tiny_tokenizer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from obliviate.methods.uld_model import load_uld

    unlearn("uld", tiny_model_dir, tiny_world, tmp_path / "u", train_cfg=FAST)
    assert not (
        tmp_path / "u" / "config.json"
    ).exists()  # a ULD-unaware loader must fail, not misread
    loaded = load_uld(tmp_path / "u")
    enc = tiny_tokenizer(["Where was", "Paris is the capital"], return_tensors="pt", padding=True)
    ids = loaded.model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert ids.shape[0] == 2 and 2 < ids.shape[1] - enc["input_ids"].shape[1] + 2 <= 7
    # greedy decoding equals the argmax of the full forward on the generated prefix
    one = tiny_tokenizer(["Where was"], return_tensors="pt")
    seq = loaded.model.generate(**one, max_new_tokens=3, eos_token_id=[])
    full = loaded.model(input_ids=seq[:, :-1]).logits
    assert torch.equal(full[0, -3:].argmax(-1), seq[0, -3:])
    torch.manual_seed(0)
    sampled = loaded.model.generate(
        **one, max_new_tokens=3, do_sample=True, top_k=5, top_p=0.9, temperature=0.7
    )
    assert sampled.shape[1] <= one["input_ids"].shape[1] + 3


def test_trained_model_is_left_without_the_autocast_wrapper(tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from obliviate.models.load import load_model

    loaded = load_model(tiny_model_dir)
    unlearn("grad_ascent", loaded, tiny_world, tmp_path / "o", train_cfg=FAST)
    assert not hasattr(loaded.model, "_original_forward")


def test_anchor_kl_is_taken_along_the_starting_models_answers(
    tiny_model_dir, tiny_world, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    import obliviate.evals.suites.base as suites

    # The random tiny model answers with nothing; stand in answers with tokens to keep.
    asked: list[list[str]] = []
    monkeypatch.setattr(
        suites, "answer_questions", lambda lm, qs, n: asked.append(list(qs)) or [f"It is {q}" for q in qs]
    )
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "home"))
    cfg = {"anchor_pairs": 6, "anchor_batch_size": 2, "anchor_weight": 3.0}
    res = unlearn("npo", tiny_model_dir, tiny_world, tmp_path / "o", config=cfg, train_cfg=FAST)
    kl = [row["anchor_kl"] for row in res.curve]
    # Step 1 sees the starting model itself; the update it makes moves the next step off it.
    assert kl[0] == pytest.approx(0.0, abs=1e-6) and kl[1] > 1e-6
    assert len(asked) == 1 and len(asked[0]) == 6
    # Cached by the model directory's content: a second run neither asks nor recomputes the
    # reference, and trains exactly as the first did on the stored one ...
    from obliviate.methods import base

    computed = []
    real = base.top_k_reference
    monkeypatch.setattr(base, "top_k_reference", lambda *a, **k: computed.append(1) or real(*a, **k))
    res2 = unlearn("npo", tiny_model_dir, tiny_world, tmp_path / "o2", config=cfg, train_cfg=FAST)
    assert len(asked) == 1 and not computed
    assert [row["anchor_kl"] for row in res2.curve] == kl
    # ... but an in-memory model may differ from its directory, so it is always asked.
    from obliviate.models.load import load_model

    unlearn("npo", load_model(tiny_model_dir), tiny_world, tmp_path / "o3", config=cfg, train_cfg=FAST)
    assert len(asked) == 2 and len(computed) == 1


def test_anchor_with_no_answers_trains_without_it_and_says_so(tiny_model_dir, tiny_world, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from obliviate.runlog import RunLog
    from obliviate.unlearn import UnlearningAnchorWarning

    # The real tiny model's greedy answers are empty: nothing to anchor on, said, not hidden.
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "home"))
    with pytest.warns(UnlearningAnchorWarning, match="anchor_pairs=0"):
        res = unlearn("npo", tiny_model_dir, tiny_world, tmp_path / "o", config={"anchor_pairs": 3}, train_cfg=FAST)
    assert "anchor_kl" not in res.curve[-1]
    assert RunLog.load(tmp_path / "o" / LOG_FILE).inputs["resolved"]["anchor_examples"] == 0


def test_anchor_draws_every_pair_before_repeating(tiny_tokenizer, tiny_world) -> None:  # type: ignore[no-untyped-def]
    import random

    from obliviate.methods.batches import batch_source, build_data, qa_example
    from obliviate.unlearn import make_method

    m = make_method("npo", {"anchor_pairs": 5, "anchor_batch_size": 2, "batch_size": 1})
    data = build_data(tiny_world, tiny_tokenizer, m)
    data.anchor = [qa_example(tiny_tokenizer, f"q{i}?", f"a{i}.", 64) for i in range(5)]
    make = batch_source(data, m.config, use_retain=True)
    rng = random.Random(0)
    seen = [int(i) for b in make(0, rng) + make(1, rng) for i in b.anchor.index]  # 6 steps x 2
    assert all(b.anchor.input_ids.shape[0] == 2 for b in make(2, rng))
    assert sorted(seen[:5]) == [0, 1, 2, 3, 4] and sorted(seen[5:10]) == [0, 1, 2, 3, 4]


def test_anchor_refused_for_methods_that_train_a_separate_model(tiny_model_dir, tiny_world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in ("task_vector", "uld"):
        with pytest.raises(MethodConfigError, match="set anchor_pairs=0"):
            unlearn(name, tiny_model_dir, tiny_world, tmp_path / "o", config={"anchor_pairs": 4})
