"""kill -9 in the middle of a fine-tune and in the middle of a model save (tiny model, tiny
world): the re-run loses nothing finished, recomputes only what was cut short, ends with the
weights an uninterrupted run gives, and leaves no orphan `.tmp` directory behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# argv: home, world dir, base model dir, kill point ("train:<role>", "save:<role>" or "").
CHILD = """
import json, os, signal, sys
from obliviate.data.schema import load_world
from obliviate.models import load as model_load
from obliviate.train import finetune as ft

world, base, kill = load_world(sys.argv[2]), sys.argv[3], sys.argv[4]
role = {"now": ""}
finetune, train, save = ft.finetune, ft.train, model_load.save_model

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def finetune_(base, world, r, cfg, out):
    role["now"] = r
    return finetune(base, world, r, cfg, out)

def train_(model, source, step, cfg, **kw):
    def at_step_2(i, row):
        if kill == f"train:{role['now']}" and i >= 2:
            die()
    return train(model, source, step, cfg, callbacks=[at_step_2])

def save_(model, tok, out, **kw):
    if kill == f"save:{role['now']}":
        weights = model.save_pretrained
        model.save_pretrained = lambda *a, **k: (weights(*a, **k), die())
    return save(model, tok, out, **kw)

ft.finetune, ft.train, model_load.save_model = finetune_, train_, save_
cfg = ft.FinetuneConfig.model_validate(json.loads(sys.argv[5]))
ft.build_target_and_oracle(world, base, cfg)
"""
CFG = {"replay": 0, "paraphrased_questions": 0, "passage_repeats": 1, "train": {"epochs": 1}}


def child(home: Path, world: Path, base: Path, kill: str) -> subprocess.CompletedProcess[str]:
    src = str(Path(__file__).parents[1] / "src")
    env = {**os.environ, "OBLIVIATE_HOME": str(home), "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(home), str(world), str(base), kill, json.dumps(CFG)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def orphans(home: Path) -> list[Path]:
    return [p for p in home.rglob(".*.tmp")]


def weights(d: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(d / "model.safetensors")


@pytest.fixture()
def tiny_world_dir(tmp_path: Path) -> Path:
    from obliviate.data.world import QUICKSTART, build_and_save

    cfg = QUICKSTART.model_copy(update={
        "name": "tiny", "n_people": 5, "n_forget": 1, "n_holdout": 1, "n_neighbours": 1,
        "relations": ("birthplace", "profession"), "passage_words": 30,
    })
    build_and_save(type(cfg).model_validate(cfg.model_dump()), tmp_path / "world")
    return tmp_path / "world"


def build(world: Path, base: Path) -> tuple[Path, Path]:
    from obliviate.train import finetune as ft

    cfg = ft.FinetuneConfig.model_validate(CFG)
    torch.set_num_threads(1)
    return ft.build_target_and_oracle(world, base, cfg)


def test_kill_during_finetunes_and_saves_then_resume(
    tmp_path: Path, tiny_world_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    # 1. Killed during the target's training: nothing is saved, nothing is left behind.
    r = child(home, tiny_world_dir, tiny_model_dir, "train:target")
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert not list((home / "finetuned").glob("*")) if (home / "finetuned").is_dir() else True
    # 2. Killed while the oracle's weights are being saved: the target is complete (with its
    #    log), the oracle's half-written directory is only a `.tmp`.
    r = child(home, tiny_world_dir, tiny_model_dir, "save:oracle")
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    (target,) = (home / "finetuned").glob("target-*")
    assert (target / "finetune_log.json").is_file() and (target / "model.safetensors").is_file()
    assert not list((home / "finetuned").glob("oracle-*")) and len(orphans(home)) == 1
    target_log = (target / "finetune_log.json").read_bytes()
    # 3. The re-run reuses the target, builds the oracle and sweeps the orphan.
    monkeypatch.setenv("OBLIVIATE_HOME", str(home))
    t, o = build(tiny_world_dir, tiny_model_dir)
    assert t == target and (t / "finetune_log.json").read_bytes() == target_log
    assert json.loads((o / "finetune_log.json").read_text())["role"] == "oracle"
    assert orphans(home) == []
    # 4. Exactly the weights of an uninterrupted run.
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "clean"))
    ct, co = build(tiny_world_dir, tiny_model_dir)
    assert ct != t
    for mine, ref in ((t, ct), (o, co)):
        a, b = weights(mine), weights(ref)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


UNLEARN_CHILD = """
import os, signal, sys
from obliviate.models import load as model_load
from obliviate.unlearn import unlearn

save = model_load.save_model
def save_(model, tok, out, **kw):
    if sys.argv[4] == "kill":
        inner = model.model if hasattr(model, "model") else model
        weights = inner.save_pretrained
        inner.save_pretrained = lambda *a, **k: (weights(*a, **k), os.kill(os.getpid(), 9))
    return save(model, tok, out, **kw)
model_load.save_model = save_
unlearn("grad_ascent", sys.argv[1], sys.argv[2], sys.argv[3], train_cfg={"max_steps": 2})
"""


def test_kill_during_the_unlearned_model_save(
    tmp_path: Path, tiny_world_dir: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "runs" / "ga"
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "home"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
           "OBLIVIATE_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-c", UNLEARN_CHILD, str(tiny_model_dir), str(tiny_world_dir),
                str(out), mode]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)

    r = run("kill")
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert not out.exists() and len(list(out.parent.glob(".ga.*.tmp"))) == 1
    from obliviate.unlearn import unlearn

    torch.set_num_threads(1)
    unlearn("grad_ascent", tiny_model_dir, tiny_world_dir, out, train_cfg={"max_steps": 2})
    # The weights never appear without their log, and the killed save's directory is gone.
    assert (out / "unlearn_log.json").is_file() and (out / "model.safetensors").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["ga"]
