"""No command deletes or modifies what obliviate did not create: every `--out` refuses a user's
file or directory (before any work, with a one-line error saying how to proceed), `--overwrite`
replaces only obliviate's own outputs, and a killed write leaves no orphan behind for long."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from obliviate.cli import app
from obliviate.data.schema import save_world
from obliviate.paths import (
    MARKER,
    OutputExistsError,
    atomic_dir,
    check_out_dir,
    output_kind,
    sweep_orphans,
)

runner = CliRunner()
KEEP = "keep me: not obliviate's"


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `root` with its bytes and mtime: what a user would lose or see changed."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and "home" not in p.relative_to(root).parts
    }


@pytest.fixture()
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """A user's working directory: their notes, a world, a copy of a model, a benchmark file."""
    import shutil

    from obliviate.data.world import QUICKSTART, build_world

    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text(KEEP)
    user = tmp_path / "mine"
    user.mkdir()
    for name in ("notes.txt", "eval.json", "audit.json", "copyright.json", "world.json"):
        (user / name).write_text(KEEP)
    save_world(build_world(QUICKSTART), tmp_path / "world")
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "base")
    return tmp_path


def commands_with_out() -> set[str]:
    group = get_command(app)
    commands = group.commands.items()  # type: ignore[attr-defined]
    return {n for n, c in commands if any("--out" in getattr(p, "opts", ()) for p in c.params)}


def argv(cmd: str, out: str, place: Path) -> list[str]:
    model, world = str(place / "models" / "base"), str(place / "world")
    return {
        "world": ["world", "--out", out],
        "unlearn": ["unlearn", "--method", "grad_ascent", "--model", model, "--world", world,
                    "--out", out, "--train", "max_steps=1"],
        "eval": ["eval", "--model", model, "--world", world, "--limit", "1", "--out", out],
        "audit": ["audit", "--model", model, "--target", model, "--oracle", model,
                  "--world", world, "--attacks", "quick", "--out", out],
        "run": ["run", str(place / "spec.yaml"), "--out", out],
        "demo": ["demo", "--out", out],
        "copyright": ["copyright", "--world", world, "--model", f"a={model}", "--model", f"b={model}",
                      "--out", out],
        "import-benchmark": ["import-benchmark", "rwku", str(place / "rwku"), "--out", out],
    }[cmd]


# Every command whose --out is a directory it fills (the others write one named file into it).
DIR_WRITERS = {"world", "unlearn", "run", "demo", "import-benchmark"}
RESUMED = {"run", "demo"}  # written into again on each call (resume), so no --overwrite


def test_the_cases_below_cover_every_out_option() -> None:
    assert commands_with_out() == DIR_WRITERS | {"eval", "audit", "copyright"}


@pytest.mark.parametrize("cmd", sorted(DIR_WRITERS | {"eval", "audit", "copyright"}))
@pytest.mark.parametrize("overwrite", [False, True])
def test_no_out_option_touches_what_the_user_owns(cmd: str, overwrite: bool, place: Path) -> None:
    (place / "spec.yaml").write_text("name: x\nworld: {preset: quickstart}\nmodel: smollm2-135m\n")
    before = snapshot(place)
    # A user's file; a user's directory (holding a file of the name the command writes).
    targets = [str(place / "notes.txt"), str(place / "mine")]
    if cmd in DIR_WRITERS:
        # The current directory, the parent of the input model; the world (for unlearn an input).
        world_kind = cmd in ("world", "import-benchmark")  # an earlier world is theirs to replace
        targets += [".", str(place / "models")] + ([] if world_kind else [str(place / "world")])
    extra = ["--overwrite"] if overwrite and cmd not in RESUMED else []
    for out in targets:
        res = runner.invoke(app, argv(cmd, out, place) + extra)
        assert res.exit_code == 2, (cmd, out, res.output)
        assert "Traceback" not in res.output and res.output.count("\n") == 1, res.output
        assert "choose a new path" in res.output, res.output
        assert snapshot(place) == before, (cmd, out)
        assert not [p for p in place.rglob(".*.tmp")], (cmd, out)


def test_unlearn_never_replaces_the_world_or_the_model_parent(place: Path) -> None:
    # The reported case: --out naming the world directory (or `.`) deleted it.
    before = snapshot(place)
    for out in (str(place / "world"), ".", str(place / "models")):
        res = runner.invoke(app, argv("unlearn", out, place) + ["--overwrite"])
        assert res.exit_code == 2 and "choose a new path" in res.output, res.output
    assert snapshot(place) == before


def test_overwrite_replaces_only_an_earlier_output_of_the_same_kind(place: Path) -> None:
    out = str(place / "u")
    assert runner.invoke(app, argv("unlearn", out, place)).exit_code == 0
    assert output_kind(place / "u") == "model" and (place / "u" / "unlearn_log.json").is_file()
    res = runner.invoke(app, argv("unlearn", out, place))
    assert res.exit_code == 2 and "--overwrite" in res.output, res.output
    res = runner.invoke(app, argv("unlearn", out, place) + ["--overwrite"])
    assert res.exit_code == 0, res.output
    # ... but a world is not a model, even with --overwrite
    res = runner.invoke(app, argv("world", out, place) + ["--overwrite"])
    assert res.exit_code == 2 and "not an obliviate world" in res.output, res.output


def test_an_empty_directory_is_used_and_marked(place: Path) -> None:
    (place / "empty").mkdir()
    assert runner.invoke(app, ["world", "--out", str(place / "empty")]).exit_code == 0
    assert json.loads((place / "empty" / MARKER).read_text()) == {"kind": "world"}


def test_outputs_of_older_versions_are_recognised(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    (run / "spec.yaml").write_text("name: x\n")
    assert output_kind(run) == "run" and check_out_dir(run, "run") == run.resolve()
    (run / "mine.txt").write_text(KEEP)
    assert output_kind(run) is None
    with pytest.raises(OutputExistsError, match="not an obliviate run"):
        check_out_dir(run, "run")


# ----- crash leftovers --------------------------------------------------------------------------
KILL_IN_SAVE = """
import os, signal, sys
from pathlib import Path
from obliviate.paths import atomic_dir
with atomic_dir(Path(sys.argv[1]), "model") as tmp:
    (tmp / "model.safetensors").write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_save_leaves_an_orphan_that_the_next_write_sweeps(tmp_path: Path) -> None:
    out = tmp_path / "m"
    p = subprocess.run([sys.executable, "-c", KILL_IN_SAVE, str(out)], check=False)
    assert p.returncode == -signal.SIGKILL
    orphans = list(tmp_path.glob(".m.*.tmp"))
    assert len(orphans) == 1 and not out.exists()
    # The next write into the same parent sweeps the dead writer's directory, and a sweep
    # while a writer is alive leaves its directory alone.
    with atomic_dir(tmp_path / "other", "model") as live:
        assert not orphans[0].exists()
        assert sweep_orphans(tmp_path) == [] and live.is_dir()
    assert not list(tmp_path.glob(".*.tmp")) and (tmp_path / "other").is_dir()


def test_markerless_leftovers_of_older_versions_are_swept_once_stale(tmp_path: Path) -> None:
    old = tmp_path / ".npo.ab12cd34.tmp"
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"x")
    assert sweep_orphans(tmp_path) == []  # might still be written by an older process
    os.utime(old, (1, 1))
    assert sweep_orphans(tmp_path) == [old]
    users = tmp_path / ".mine.ab12cd34.tmp"  # looks like one, but holds a user's folder
    (users / "sub").mkdir(parents=True)
    os.utime(users, (1, 1))
    assert sweep_orphans(tmp_path) == [] and users.is_dir()
