"""Content fingerprints: what keys the fine-tuned target/oracle cache and every eval/audit cache."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from obliviate.paths import content_fingerprint, home


@pytest.fixture()
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "home"))
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"hidden_size": 8}')
    (d / "model.safetensors").write_bytes(bytes(range(256)) * 4096)
    return d


def test_a_copy_with_new_times_keeps_the_fingerprint(model_dir: Path, tmp_path: Path) -> None:
    # A reinstall (new venv, new mtimes, new path) must reuse the cached target and oracle.
    before = content_fingerprint(model_dir)
    copy = tmp_path / "elsewhere"
    shutil.copytree(model_dir, copy)
    os.utime(copy / "model.safetensors", (1, 1))
    (copy / "finetune_log.json").write_text('{"wall_s": 12.3}')  # a run log is not the model
    assert content_fingerprint(copy) == before


def test_one_changed_byte_in_the_middle_changes_the_fingerprint(model_dir: Path) -> None:
    # Sampling the file's ends would miss an edit to one middle layer (RMU changes three).
    before = content_fingerprint(model_dir)
    data = bytearray((model_dir / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 1
    (model_dir / "model.safetensors").write_bytes(bytes(data))
    assert content_fingerprint(model_dir) != before
    (model_dir / "config.json").write_text('{"hidden_size": 9}')
    assert len({before, content_fingerprint(model_dir)}) == 2


def test_digests_are_memoised_and_stale_entries_dropped(model_dir: Path) -> None:
    real = content_fingerprint(model_dir)
    memo = json.loads((home() / "digests.json").read_text())
    weights = [k for k in memo if k.startswith(str((model_dir / "model.safetensors").resolve()))]
    assert len(weights) == 1
    # A planted digest for the current (path, size, mtime) is what a second call returns:
    # the file is not read again.
    memo[weights[0]] = "0" * 64
    (home() / "digests.json").write_text(json.dumps(memo))
    planted = content_fingerprint(model_dir)
    assert planted != real
    (model_dir / "model.safetensors").write_bytes(b"new weights")
    content_fingerprint(model_dir)
    memo = json.loads((home() / "digests.json").read_text())
    assert len([k for k in memo if k.startswith(str((model_dir / "model.safetensors").resolve()))]) == 1
    assert content_fingerprint(model_dir) not in (planted, real)
