"""Real unlearning benchmarks (TOFU, MUSE, WMDP, RWKU) read from files the user already has.

Each benchmark is one file registering a loader with `@benchmark("name")`; a loader maps the
benchmark's own tables onto obliviate's `World` (facts, passages, general items), so every
method, suite and attack runs on it unchanged. Nothing is ever downloaded: give the folder you
have (JSON, JSON Lines, Parquet, or a `datasets` save_to_disk folder).

    world = load_benchmark("tofu", "~/data/TOFU", split="forget10")
    import_benchmark("wmdp", "~/data/wmdp", "worlds/wmdp", domains=["bio", "cyber"])

What to train on. TOFU's facts are its training data (the target is fine-tuned on them). For
MUSE, WMDP and RWKU the facts are evaluation *probes* and the training data are the passages
(corpora); such worlds record `config["train_on"] == "passages"`, and unlearning should then use
`forget_data="passages"` (training on the probes would unlearn the test set itself). Passages
that are probes too (membership-inference texts) are listed in `config["eval_only_passages"]`;
`training_passages(world, "forget")` leaves them out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from obliviate.data.benchmarks._common import training_passages
from obliviate.data.benchmarks._io import BenchmarkFormatError
from obliviate.data.schema import World, save_world
from obliviate.registry import benchmarks, import_submodules

__all__ = ["BenchmarkFormatError", "import_benchmark", "load_benchmark", "training_passages"]


def load_benchmark(name: str, path: str | Path, **opts: Any) -> World:
    """Read benchmark `name` from `path` (a folder, or for some benchmarks a single file) into a
    `World`. `opts` are the benchmark's own options (see its loader's config); unknown options
    and unknown benchmark names fail with a message listing the valid ones."""
    loader = benchmarks.get(name)
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(
            f"{root}: no such file or folder; give the folder where your {name} files are "
            "(obliviate never downloads benchmarks)"
        )
    world = loader(root, **opts)
    if not isinstance(world, World):  # a plugin bug, not a user error
        raise TypeError(f"benchmark loader '{name}' returned {type(world).__name__}, not a World")
    return world


def import_benchmark(
    name: str, path: str | Path, out_world_dir: str | Path, *, overwrite: bool = False, **opts: Any
) -> World:
    """`load_benchmark`, then write the result as a world directory (what `--world` takes) in
    one atomic step; an earlier obliviate world there is replaced only with `overwrite`."""
    from obliviate.paths import check_out_dir

    check_out_dir(out_world_dir, "world", overwrite=overwrite, inputs=[path])
    world = load_benchmark(name, path, **opts)
    save_world(world, Path(out_world_dir), overwrite=overwrite)
    return world


import_submodules(__name__)
