"""Linear probe: is the forgotten fact still linearly readable from the hidden states?

Hong et al. 2024 ("Intrinsic evaluation of unlearning using parametric knowledge traces",
ConceptVectors) argue that behavioural tests miss knowledge that remains in the parameters and
representations; probing classifiers (Alain & Bengio 2016; Burns et al. 2022) read it directly.

For every multiple-choice fact we build four statements (the true answer with its key replaced
by each option) and take the hidden state at the statement's last token, in the assistant turn
after the question. A logistic-regression probe (scikit-learn) is trained to tell true from
false statements on RETAIN facts only, then picks, for each probed forget fact, the option it
scores highest. Recovered = it picks the true option. Chance is 25%; the oracle, probed the
same way, measures what the probe gets without the knowledge (e.g. from answer priors).
One cell per probed layer (given as a fraction of the depth).
"""

from __future__ import annotations

import time

import numpy as np
from pydantic import Field

from obliviate.attacks.base import (
    Attack,
    AttackConfig,
    AttackContext,
    AttackResult,
    Cell,
    Evidence,
    innermost,
)
from obliviate.data.schema import MCQ, Fact, World
from obliviate.models.lm import LM, Prompt
from obliviate.registry import attack


class ProbeConfig(AttackConfig):
    layers: list[float] = Field(default_factory=lambda: [0.5, 0.75], min_length=1,
                                description="probed depths as fractions of the layer count, one cell each")
    c: float = Field(1.0, gt=0, description="inverse L2 regularisation of the logistic regression")


def statements(fact: Fact) -> list[Prompt]:
    """The question answered with each MCQ option in place of the key (4 prompts)."""
    template = fact.answer if fact.key in fact.answer else "The answer is " + fact.key + "."
    return [Prompt(fact.question, prefill=template.replace(fact.key, c)) for c in mcq_of(fact).choices]


def mcq_of(fact: Fact) -> MCQ:
    """The fact's multiple-choice question (the probe's labels come from it)."""
    if fact.mcq is None:
        raise ValueError(f"fact {fact.id} has no multiple-choice options: the probe needs its MCQ distractors")
    return fact.mcq


def probe_split(world: World, ctx: AttackContext) -> tuple[list[Fact], list[Fact]]:
    """(train facts: retain facts with an MCQ, test facts: probed forget facts with an MCQ)."""
    train = [f for f in world.retain_facts if f.mcq is not None]
    test = [f for f in ctx.probes if f.mcq is not None]
    return train, test


def fit_probe(x: np.ndarray, y: np.ndarray, c: float):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x, y)


@attack("probe")
class Probe(Attack):
    """Logistic-regression truth probe on hidden states, trained on retain, tested on forget."""

    name = "probe"
    Config = ProbeConfig
    transforms = "representation"

    def run(self, model: LM, world: World, ctx: AttackContext) -> AttackResult:
        t0 = time.perf_counter()
        train, test = probe_split(world, ctx)
        if len(train) < 4 or not test:
            return self.result(model, [], t0, ["skipped: needs >= 4 retain and >= 1 probed MCQ facts"])
        lm = innermost(model)
        n = int(lm.model.config.num_hidden_layers)
        layers = sorted({max(1, min(n, round(fr * n))) for fr in self.config.layers})
        prompts = [p for f in train + test for p in statements(f)]
        hs = lm.hidden_states(prompts, layers, pool="last")  # (N, L, H)
        n_train = 4 * len(train)
        train_answers = [mcq_of(f).answer for f in train]
        y = np.array([float(i == a) for a in train_answers for i in range(4)])
        cells = []
        for j, layer in enumerate(layers):
            clf = fit_probe(hs[:n_train, j], y, self.config.c)
            margin = clf.decision_function(hs[n_train:, j]).reshape(len(test), 4)
            scores = {f.id: float("nan") for f in ctx.probes}
            samples = []
            for f, m in zip(test, margin, strict=True):
                mcq = mcq_of(f)
                pick = int(np.argmax(m))
                scores[f.id] = float(pick == mcq.answer)
                samples.append(Evidence(fact_id=f.id, prompt=f.question, answer=f.key,
                                        output=f"probe picks {mcq.choices[pick]!r} (margins {np.round(m, 2).tolist()})",
                                        recovered=pick == mcq.answer))
            train_acc = float(np.mean(np.argmax(clf.decision_function(hs[:n_train, j]).reshape(-1, 4), 1)
                                      == train_answers))
            cells.append(Cell(setting=f"layer={layer}", params={"layer": layer}, scores=scores, samples=samples,
                              info={"train_facts": [f.id for f in train], "train_mcq_accuracy": train_acc}))
        return self.result(model, cells, t0)
