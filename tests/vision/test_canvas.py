import numpy as np
import pytest

from obliviate.vision.canvas import OBJECTS, STYLES, render


def test_render_is_deterministic_and_labelled() -> None:
    a, b = render(3, size=16, seed=1), render(3, size=16, seed=1)
    assert a.images.shape == (3 * len(OBJECTS) * len(STYLES), 3, 16, 16)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.styles, b.styles)
    assert not np.array_equal(a.images, render(3, size=16, seed=2).images)
    assert a.images.min() >= 0 and a.images.max() <= 1
    counts = np.bincount(a.objects * len(STYLES) + a.styles)
    assert counts.tolist() == [3] * (len(OBJECTS) * len(STYLES))


def test_styles_differ_in_colour_and_a_subset_keeps_labels() -> None:
    c = render(20, size=16, seed=0)
    means = np.stack([c.images[c.styles == s].mean(axis=(0, 2, 3)) for s in range(len(STYLES))])
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1) + np.eye(len(STYLES))
    assert gaps.min() > 0.05  # every pair of styles has a different mean colour
    sub = c.subset(np.where(c.objects == 2)[0])
    assert set(sub.objects.tolist()) == {2} and len(sub) == 20 * len(STYLES)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="n_per_cell"):
        render(0)
    with pytest.raises(ValueError, match="unknown object"):
        render(1, objects=("hexagon",))
