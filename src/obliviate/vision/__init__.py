"""Beyond language models: image classifiers, regression, diffusion models and GANs, unlearned
and audited on the same registry, run log, runner, report and verdict logic."""
