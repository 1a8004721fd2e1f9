"""A few training steps of a tiny model, in one process or as one rank of a launched job.

    ACCELERATE_USE_CPU=true torchrun --standalone --nproc-per-node 2 ddp_worker.py OUT

Each rank trains on its `rank_shard` of the batches with grad_accum=1;
`train_once(distributed=False)` trains one process with grad_accum=2 over all of them. Rank 0
writes OUT/ddp.pt with the final parameters, the per-step losses averaged over ranks, and what
accelerate set up, for test_ddp.py to compare.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch

from obliviate.models.lm import Prompt
from obliviate.models.prompt import encode_pair
from obliviate.train.batch import TokenBatch, collate
from obliviate.train.distributed import rank_shard
from obliviate.train.loop import StepOutput, TrainConfig, Trainer
from obliviate.train.losses import mean_nll


def _load_tests_conftest() -> Any:
    # By path, under its own name: pytest registers every conftest.py as module "conftest", so
    # `import conftest` would get whichever one pytest loaded last.
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location("obliviate_tests_conftest", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_builders = _load_tests_conftest()
build_tiny_model, build_tiny_tokenizer = _builders.build_tiny_model, _builders.build_tiny_tokenizer
STEPS = 4  # two epochs of four batches: two optimizer steps per epoch


def _batches(tok: Any) -> list[TokenBatch]:
    ex = [
        encode_pair(tok, Prompt(f"Where was person {i} born?"), f"In town {i * 7}.")
        for i in range(8)
    ]
    return [collate(ex[i : i + 2], tok.pad_token_id, [i, i + 1]) for i in range(0, 8, 2)]


def train_once(schedule: str, *, distributed: bool, bf16: bool = False) -> dict[str, Any]:
    """Train a fresh tiny model (same seed every time); return final weights, losses, rows seen."""
    torch.set_num_threads(1)
    tok = build_tiny_tokenizer()
    model = build_tiny_model(len(tok), seed=0, layers=2)
    batches = _batches(tok)
    seen: list[int] = []

    def loss_fn(m: Any, batch: TokenBatch) -> StepOutput:
        seen.extend(int(i) for i in batch.index)
        return StepOutput(mean_nll(m, batch))

    cfg = TrainConfig(
        lr=1e-2,
        epochs=2,
        max_steps=STEPS,
        grad_accum=1 if distributed else 2,
        bf16=bf16,
        seed=7,
        schedule=schedule,
    )  # type: ignore[arg-type]
    trainer: Trainer[TokenBatch] = Trainer(model, loss_fn, cfg)
    res = trainer.run(rank_shard(batches) if distributed else batches)
    return {
        "params": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
        "losses": [row["loss"] for row in res.curve],
        "seen": seen,
        "steps": res.steps,
    }


def main(out: Path) -> None:
    import torch.distributed as dist
    from accelerate.state import AcceleratorState, PartialState

    constant = train_once("constant", distributed=True)
    state = PartialState()
    n = state.num_processes
    info: dict[str, Any] = {
        "distributed_type": str(AcceleratorState().distributed_type),
        "num_processes": n,
    }
    flat = torch.cat([v.float().flatten() for v in constant["params"].values()])
    replicas = [torch.zeros_like(flat) for _ in range(n)]
    dist.all_gather(replicas, flat)
    info["replicas_equal"] = all(torch.equal(replicas[0], r) for r in replicas)
    per_rank: list[Any] = [None] * n
    dist.all_gather_object(per_rank, {"losses": constant["losses"], "seen": constant["seen"]})
    info["seen_by_rank"] = [r["seen"] for r in per_rank]
    info["mean_losses"] = [
        sum(r["losses"][i] for r in per_rank) / n for i in range(len(constant["losses"]))
    ]
    linear = train_once("linear", distributed=True)
    # A second run in the same launched process in another precision (fine-tune in fp32, then
    # unlearn in bf16): the loop must make a new Accelerator without losing the process group.
    try:
        train_once("constant", distributed=True, bf16=True)
        info["other_precision_error"] = None
    except ValueError as e:
        info["other_precision_error"] = str(e)
    if state.is_main_process:
        torch.save(
            {"constant": constant["params"], "linear": linear["params"], "info": info},
            out / "ddp.pt",
        )
    # Both ranks leave together and tear the gloo group down explicitly: a rank that exits while
    # the other still holds the group can abort in the group's destructor ("terminate called
    # without an active exception"), seen once in CI on a loaded 2-core machine.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
