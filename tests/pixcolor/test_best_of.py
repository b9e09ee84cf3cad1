"""PixColor.best_of: per image, the sample of colorize(num_samples=n) the PixelCNN finds most
likely; deterministic, batch-independent, ties to the lowest index."""

import numpy as np
import pytest

from pixcolor import color
from pixcolor.colorizer import Draw, most_likely


@pytest.fixture(scope="module")
def images(photo) -> list[np.ndarray]:
    """Three crops, two sizes (the sampler batches per size)."""
    return [photo[:40, :40], photo[:40, :56], photo[8:48, 16:56]]


def test_the_choice_is_the_most_likely_sample_and_equals_it_drawn_alone(tiny, images):
    ys = [color.luma(im) for im in images]
    best = tiny.best_of(ys, seed=2, n=4, threads=1)
    rgb = tiny.render(ys, best.chroma)
    assert best.logp.shape == (3, 4) and len(best.index) == len(best.chroma) == 3
    assert max(best.index) > 0  # the test sees a choice other than sample 0
    for i, im in enumerate(images):
        want, want_logp = tiny.colorize([im], num_samples=4, seed=2, return_logp=True)
        np.testing.assert_array_equal(best.logp[i].numpy(), want_logp[0])
        k = best.index[i]
        assert want_logp[0][k] == want_logp[0].max()
        assert all(want_logp[0][j] < want_logp[0][k] for j in range(k))  # first on ties
        np.testing.assert_array_equal(rgb[i], want[0][k])
        alone = tiny.sample([ys[i]], [Draw(0, 2, k)], threads=1)
        assert np.array_equal(best.chroma[i].numpy(), alone.chroma[0].numpy())


def test_one_candidate_is_sample_zero(tiny, images):
    ys = [color.luma(im) for im in images]
    best = tiny.best_of(ys, seed=3, n=1)
    assert best.index == [0, 0, 0] and best.logp.shape == (3, 1)
    want = tiny.colorize(images, num_samples=1, seed=3)
    for got, w in zip(tiny.render(ys, best.chroma), want, strict=True):
        np.testing.assert_array_equal(got, w[0])


def test_the_choice_does_not_depend_on_the_other_images_or_the_batch(tiny, images):
    ys = [color.luma(im) for im in images]
    together = tiny.best_of(ys, seed=1, n=5, threads=1)
    one_per_pass = tiny.best_of(ys, seed=1, n=5, batch_size=1, threads=1)
    assert one_per_pass.index == together.index
    assert one_per_pass.logp.tolist() == together.logp.tolist()
    for i in range(len(ys)):
        alone = tiny.best_of([ys[i]], seed=1, n=5, threads=1)
        assert alone.index == [together.index[i]]
        assert alone.logp[0].tolist() == together.logp[i].tolist()
        assert np.array_equal(alone.chroma[0].numpy(), together.chroma[i].numpy())


def test_ties_go_to_the_lowest_index(tiny, images):
    assert most_likely([-3.0, -1.0, -1.0, -2.0]) == 1
    assert most_likely([-5.0]) == 0
    # temperature 0 takes the most likely bin everywhere: every candidate is the same sample
    best = tiny.best_of([color.luma(images[0])], seed=1, n=3, temperature=0)
    assert len(set(best.logp[0].tolist())) == 1 and best.index == [0]


def test_no_candidates_is_refused(tiny, images):
    with pytest.raises(ValueError, match="n >= 1"):
        tiny.best_of([color.luma(images[0])], seed=1, n=0)
