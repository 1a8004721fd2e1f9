"""Fine-tuning speed on this machine: tokens/s, fraction of measured bf16 matmul peak, peak RSS,
and wall time to build target + oracle for the quickstart world with the bundled model.

Run: python benchmarks/bench_finetune.py   (takes a few minutes). Fine-tuned models go to a
fresh cache so the build is timed cold; the one-off GGUF conversion is timed separately.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import (
    matmul_peak_gflops,
    non_embedding_params,
    peak_rss_mb,
    train_flops_per_token,
    write_result,
)


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    peak_bf16 = matmul_peak_gflops(torch.bfloat16)
    peak_fp32 = matmul_peak_gflops(torch.float32)

    from obliviate.data.world import QUICKSTART, build_and_save
    from obliviate.models.load import load_model
    from obliviate.paths import home
    from obliviate.train.finetune import FinetuneConfig, build_target_and_oracle

    t0 = time.perf_counter()
    base = load_model("smollm2-135m")  # converts the GGUF once into $OBLIVIATE_HOME
    load_s = time.perf_counter() - t0
    n_params = non_embedding_params(base.model)
    base_head_params = base.model.get_output_embeddings().weight.numel()
    del base

    converted = home() / "models"
    with tempfile.TemporaryDirectory() as tmp:
        world_dir = Path(tmp) / "world"
        build_and_save(QUICKSTART, world_dir)
        cache = Path(tmp) / "home"
        cache.mkdir()
        os.symlink(converted, cache / "models")  # reuse the converted base, nothing else
        os.environ["OBLIVIATE_HOME"] = str(cache)
        t0 = time.perf_counter()
        target, oracle = build_target_and_oracle(world_dir, "smollm2-135m", FinetuneConfig())
        build_s = time.perf_counter() - t0
        logs = [json.loads((d / "finetune_log.json").read_text()) for d in (target, oracle)]

    tokens = sum(log["tokens"] for log in logs)
    train_s = sum(log["wall_s"] for log in logs)
    tps = tokens / train_s
    achieved = tps * train_flops_per_token(n_params) / 1e9
    # Losses run the LM head on answer tokens only, so 6N per token (the usual MFU convention)
    # overstates the FLOPs actually computed. The trunk alone is a lower bound on real work.
    head = base_head_params
    trunk_only = tps * train_flops_per_token(n_params - head) / 1e9
    write_result(
        "finetune",
        {
            "machine_cores": os.cpu_count(),
            "matmul_peak_gflops_bf16": round(peak_bf16, 1),
            "matmul_peak_gflops_fp32": round(peak_fp32, 1),
            "model_params_counted": n_params,
            "finetune_tokens_per_s": round(tps, 1),
            "achieved_gflops": round(achieved, 1),
            "fraction_of_bf16_peak_mfu_6N": round(achieved / peak_bf16, 3),
            "fraction_of_bf16_peak_trunk_only": round(trunk_only / peak_bf16, 3),
            "target_plus_oracle_wall_s": round(build_s, 1),
            "target_tokens_per_s": round(logs[0]["tokens_per_s"], 1),
            "oracle_tokens_per_s": round(logs[1]["tokens_per_s"], 1),
            "base_load_s": round(load_s, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
    )


if __name__ == "__main__":
    main()
