"""The target/oracle data recipe: what each model is trained on, and the rehearsal pairs."""

from __future__ import annotations

import re

import pytest

from obliviate.data.world import QUICKSTART, build_world, load_general
from obliviate.train.finetune import FinetuneConfig, examples_for, replay_pairs, training_texts


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Base answers for rehearsal are cached under $OBLIVIATE_HOME: keep them out of the user's.
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "home"))


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


def test_replay_pairs_are_correct_shaped_and_disjoint_from_evaluated_general_items() -> None:
    pairs = replay_pairs(10_000)
    assert len(pairs) >= 600
    assert len({q for q, _ in pairs}) == len(pairs)  # no question twice
    assert all(q.strip().endswith("?") and a.strip() for q, a in pairs)
    general = load_general()
    assert not {q for q, _ in pairs} & {g.question for g in general}
    # No pair may restate an evaluated fact: its answer must not contain an evaluated item's key
    # together with that item's content words (e.g. "pyramids of Giza" + "Egypt").
    for g in general:
        subject = _words(g.question) - _words("what which who where when how many is the of in does are called have has")
        for q, a in pairs:
            if g.key.lower() in a.lower() and len(subject & _words(q + " " + a)) >= 2:
                pytest.fail(f"replay pair {q!r} -> {a!r} restates evaluated item {g.question!r}")


def test_target_trains_on_forget_and_the_oracle_does_not(tiny_tokenizer) -> None:  # type: ignore[no-untyped-def]
    world = build_world(QUICKSTART)
    cfg = FinetuneConfig(replay=5, paraphrased_questions=1, passage_repeats=2)
    target = examples_for(world, "target", tiny_tokenizer, cfg)
    oracle = examples_for(world, "oracle", tiny_tokenizer, cfg)
    n_forget = len(world.facts_in("forget"))
    n_forget_passages = len(world.trainable_passages("forget"))
    assert len(target) - len(oracle) == 2 * n_forget + 2 * n_forget_passages
    assert all(f.question not in str(training_texts(world, "oracle")) for f in world.facts_in("forget"))


def test_top_k_kl_is_zero_on_the_base_and_positive_after_a_change() -> None:
    import torch

    from obliviate.train.losses import AnswerLogits, top_k_kl

    torch.manual_seed(0)
    base = torch.randn(5, 11)
    top = torch.log_softmax(base, -1).topk(4, dim=-1)

    def kl(logits: torch.Tensor) -> float:
        a = AnswerLogits(logits, torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.long), 1)
        return float(top_k_kl(a, top.indices, top.values))

    assert kl(base) == pytest.approx(0.0, abs=1e-5)
    assert kl(base + 3.0) == pytest.approx(0.0, abs=1e-5)  # a shift of all logits changes nothing
    assert kl(torch.randn(5, 11)) > 0.05


def test_finetune_with_kl_rehearsal_logs_both_terms(tiny_model_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from obliviate.train.finetune import finetune
    from obliviate.train.loop import TrainConfig

    world = build_world(QUICKSTART)
    cfg = FinetuneConfig(train=TrainConfig(lr=1e-3, epochs=1, max_steps=40), replay=6, replay_top_k=8)
    out, result = finetune(tiny_model_dir, world, "oracle", cfg, tmp_path / "oracle")
    log = json.loads((out / "finetune_log.json").read_text())
    assert log["n_replay"] == 6
    keys = {k for point in result.curve for k in point}
    assert {"world_nll", "replay_kl"} <= keys
    assert all(point.get("replay_kl", 0.0) >= -1e-6 for point in result.curve)


def test_frozen_embeddings_stay_exactly_as_they_were(tiny_model_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from obliviate.models.load import load_model
    from obliviate.train.finetune import finetune
    from obliviate.train.loop import TrainConfig

    world = build_world(QUICKSTART)
    cfg = FinetuneConfig(
        train=TrainConfig(lr=1e-3, epochs=1, max_steps=6), replay=6, replay_top_k=8, train_embeddings=False
    )
    out, _ = finetune(tiny_model_dir, world, "target", cfg, tmp_path / "target")
    before, after = load_model(tiny_model_dir).model, load_model(out).model
    emb = before.get_input_embeddings().weight
    assert torch.equal(emb, after.get_input_embeddings().weight)
    changed = [n for (n, p), q in zip(before.named_parameters(), after.parameters(), strict=True) if not torch.equal(p, q)]
    assert changed and all("embed" not in n for n in changed)


def test_rehearsal_windows_cover_the_pool_before_repeating() -> None:
    import random

    from obliviate.train.finetune import make_batches

    examples = [([1, 2], [3] * (1 + i % 4)) for i in range(10)]
    source = make_batches(examples, 3, 0, offset=100, per_epoch=4)
    seen = [sorted(int(i) for b in source(e, random.Random(e)) for i in b.index) for e in range(3)]
    assert [len(s) for s in seen] == [4, 4, 4]
    assert all(i >= 100 for s in seen for i in s)
    assert len(set(seen[0] + seen[1])) == 8  # two windows, no repeat
    assert set(seen[0] + seen[1] + seen[2]) == set(range(100, 110))  # the third wraps round
    full = make_batches(examples, 3, 0)(0, random.Random(0))
    assert sorted(int(i) for b in full for i in b.index) == list(range(10))


def test_target_and_oracle_share_one_rehearsal_reference(tiny_model_dir, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import obliviate.train.finetune as ft
    from obliviate.train.loop import TrainConfig

    calls: list[int] = []
    real = ft.top_k_reference

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "top_k_reference", counting)
    monkeypatch.setattr(ft, "_REFERENCES", {})  # earlier tests in this process filled it
    world = build_world(QUICKSTART)
    cfg = FinetuneConfig(train=TrainConfig(lr=1e-3, epochs=1, max_steps=2), replay=6, replay_top_k=8)
    ft.finetune(tiny_model_dir, world, "target", cfg, tmp_path / "target")
    ft.finetune(tiny_model_dir, world, "oracle", cfg, tmp_path / "oracle")
    assert len(calls) == 1
    ft.finetune(tiny_model_dir, world, "oracle", cfg.model_copy(update={"replay_top_k": 4}), tmp_path / "o4")
    assert len(calls) == 2  # other settings, another reference


def test_rehearsal_pairs_the_questions_with_the_bases_greedy_answers_once(tiny_model_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from obliviate.models.hf_lm import HFLM
    from obliviate.models.lm import Prompt
    from obliviate.models.load import load_model
    from obliviate.train.finetune import rehearsal_pairs

    loaded = load_model(tiny_model_dir)
    cfg = FinetuneConfig(replay=4, replay_answer_tokens=5)
    written = replay_pairs(4)
    pairs = rehearsal_pairs(loaded.model, loaded.tokenizer, loaded.path, cfg)
    greedy = HFLM(loaded.model, loaded.tokenizer).generate([Prompt(q) for q, _ in written], max_new_tokens=5)
    assert pairs == [(q, g.strip()) for (q, _), g in zip(written, greedy, strict=True)]
    assert [a for _, a in pairs] != [a for _, a in written]

    def no_generation(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the base's answers should come from the disk cache")

    monkeypatch.setattr(HFLM, "generate", no_generation)
    assert rehearsal_pairs(loaded.model, loaded.tokenizer, loaded.path, cfg) == pairs
    written_cfg = cfg.model_copy(update={"replay_answers": "written"})
    assert rehearsal_pairs(loaded.model, loaded.tokenizer, loaded.path, written_cfg) == written


def test_nll_rehearsal_on_the_bases_own_answers_is_refused() -> None:
    with pytest.raises(ValueError, match="replay_answers='written'"):
        FinetuneConfig(replay_loss="nll")
    assert FinetuneConfig(replay_loss="nll", replay_answers="written").replay_loss == "nll"
