"""`muse`: MUSE's six-way evaluation (Shi et al. 2024), criteria C1–C4 on one model.

C1 VerbMem (forget passages), C2 KnowMem on forget QA, C3 PrivLeak (Min-K% k=40% AUC against
the oracle's, MUSE orientation), C4 KnowMem on retain QA. Every MIA score's AUC is reported
too, in our "higher = member" orientation (`mia_auc/<score>`: 0.5 chance, 1 memorised).

C5 (scalability: unlearn forget sets of growing size, each from the target) and C6
(sustainability: successive unlearning requests, each from the previous result) are
experiments over several unlearned models, not metrics of one: the driver that trains them
calls `muse_curve` with the models in order and records the returned points as run-log curves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from obliviate.data.schema import World
from obliviate.evals.metrics.memorization import KNOWMEM_STOP, knowmem, knowmem_prompt, verbmem
from obliviate.evals.metrics.privacy import auc_fast, mia_auc, privleak
from obliviate.evals.stats import aggregate, percentile_bootstrap, scalar
from obliviate.evals.suites.base import (
    MIA_SCORES,
    SuiteResult,
    continue_passages,
    mia_scores,
    mia_texts,
    passage_probes,
    require_oracle,
    take,
)
from obliviate.models.lm import LM, Prompt
from obliviate.registry import suite
from obliviate.runlog import CurvePoint, Sample

KNOWMEM_MAX_NEW_TOKENS = 32
N_SHOTS = 3
PRIVLEAK_SCORE = "min_k_40"  # MUSE's default: 'forget_holdout_Min-40%'


def _shots(world: World, n: int) -> list[tuple[str, str]]:
    # In-context examples must not be evaluated items: general knowledge is neutral to both.
    pool = [(g.question, g.answer) for g in world.general] or [(f.question, f.answer) for f in world.facts_in("holdout")]
    return pool[:n]


def _knowmem(lm: LM, world: World, limit: int | None, res: SuiteResult) -> None:
    """KnowMem on forget and retain facts (MUSE C2, C4), both splits in one generate call."""
    facts = {split: take(world.facts_in(split), limit) for split in ("forget", "retain")}
    shots = _shots(world, N_SHOTS)
    prompts = [Prompt(knowmem_prompt(shots, f.question), chat=False) for fs in facts.values() for f in fs]
    answers = iter(lm.generate(prompts, max_new_tokens=KNOWMEM_MAX_NEW_TOKENS, stop=[KNOWMEM_STOP]))
    for split, fs in facts.items():
        if not fs:
            res.notes.append(f"no {split} facts: KnowMem_{split[0]} skipped")
            continue
        outs = [next(answers) for _ in fs]
        vals = [knowmem(o, f.answer) for f, o in zip(fs, outs, strict=True)]
        res.metrics[f"knowmem_{split[0]}"] = aggregate(vals, higher_is_better=split != "forget",
                                                       note="ROUGE-L F1 (MUSE)")
        res.samples += [Sample(suite="muse", id=f.id, split=split, prompt=f.question, target=f.answer,
                               output=o.strip(), scores={"knowmem": v}) for f, o, v in zip(fs, outs, vals, strict=True)]


def _privleak(lm: LM, oracle: LM, reference: LM | None, world: World, limit: int | None,
              res: SuiteResult) -> None:
    forget, holdout = mia_texts(world, "forget", limit), mia_texts(world, "holdout", limit)
    if not forget or not holdout:
        raise ValueError(
            f"PrivLeak needs forget and holdout texts (members and never-trained texts); world "
            f"'{world.name}' has {len(forget)} forget and {len(holdout)} holdout texts"
        )
    items = [s for _, s in forget + holdout]
    nf = len(forget)
    ours, theirs = mia_scores(lm, items), mia_scores(oracle, items)
    for name in MIA_SCORES:
        s = ours[name]
        res.metrics[f"mia_auc/{name}"] = scalar(
            mia_auc(s[:nf], s[nf:]), n=len(items), higher_is_better=None,
            ci95=percentile_bootstrap(lambda i, j, s=s: auc_fast(s[:nf][i], s[nf:][j]), [nf, len(holdout)]),
            note="P(forget scores > holdout scores); 0.5 = chance",
        )
    a, b = ours[PRIVLEAK_SCORE], theirs[PRIVLEAK_SCORE]

    def leak(i: np.ndarray, j: np.ndarray) -> float:
        # Same resampled texts for model and oracle: the comparison stays paired.
        ma, mo = auc_fast(a[:nf][i], a[nf:][j]), auc_fast(b[:nf][i], b[nf:][j])
        return privleak(ma, mo) if mo < 1.0 else float("nan")

    oracle_auc = mia_auc(b[:nf], b[nf:])
    if oracle_auc >= 1.0:
        res.notes.append("the oracle separates forget from holdout perfectly: PrivLeak undefined (NaN)")
    value = privleak(mia_auc(a[:nf], a[nf:]), oracle_auc) if oracle_auc < 1.0 else float("nan")
    res.metrics["privleak"] = scalar(
        value, n=len(items),
        ci95=percentile_bootstrap(leak, [nf, len(holdout)]), higher_is_better=None,
        note="MUSE orientation (AUC = P(holdout > forget)), Min-K% k=40%; -100 memorised, 0 ideal",
    )
    res.metrics["oracle_mia_auc/min_k_40"] = scalar(oracle_auc, n=len(items))
    if reference is not None:
        r = mia_scores(reference, items)
        for name in ("loss", "min_k_40"):
            cal = ours[name] - r[name]
            res.metrics[f"mia_auc/reference_{name}"] = scalar(mia_auc(cal[:nf], cal[nf:]), n=len(items),
                                                             note="target minus reference-model score")


@suite("muse", needs_oracle=True)
def muse(
    lm: LM,
    world: World,
    *,
    oracle: LM | None = None,
    reference: LM | None = None,
    limit: int | None = None,
) -> SuiteResult:
    """MUSE C1–C4. `oracle` is required for PrivLeak; `reference` adds reference-calibrated AUCs."""
    oracle_lm = require_oracle(oracle, "muse", "PrivLeak (C3)")
    res = SuiteResult("muse", args={"limit": limit})
    probes = passage_probes(take(world.passages_in("forget"), limit))
    if probes:
        outs = continue_passages(lm, [pre for _, pre, _ in probes])
        vals = [verbmem(o, ref) for (_, _, ref), o in zip(probes, outs, strict=True)]
        res.metrics["verbmem_f"] = aggregate(vals, higher_is_better=False, note="ROUGE-L F1 (MUSE C1)")
        res.samples += [Sample(suite="muse", id=p.id, split="forget", prompt=pre, target=ref, output=o,
                               scores={"verbmem": v})
                        for (p, pre, ref), o, v in zip(probes, outs, vals, strict=True)]
    else:
        res.notes.append("no forget passages: VerbMem (C1) skipped")
    _knowmem(lm, world, limit, res)
    _privleak(lm, oracle_lm, reference, world, limit, res)
    return res


def muse_curve(models: Sequence[tuple[float, LM]], world: World, *, oracle: LM,
               limit: int | None = None) -> dict[str, list[CurvePoint]]:
    """C5/C6 hook: evaluate C1–C4 for a sequence of unlearned models, x = forget-set size (C5)
    or request index (C6), and return one curve per metric for `RunLog.curves`."""
    curves: dict[str, list[CurvePoint]] = {}
    for x, model in models:
        r = muse(model, world, oracle=oracle, limit=limit)
        for name, agg in r.metrics.items():
            curves.setdefault(f"muse/{name}", []).append(CurvePoint(x=x, y=agg.value))
    return curves
