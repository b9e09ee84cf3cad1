"""pixcolor_best: the most likely of N seed-1 samples, drawn in the PixColor methods' shared
sampling pass, equal to PixColor.best_of + render of each image alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.generate import generate
from bench.methods import DEFAULT_METHODS, METHODS, Item, MethodOptions, create_method
from bench.pipeline import build
from pixcolor import PixColor, color
from pixcolor.colorizer import Draw
from tests.fakes import fake_photo

N_IMAGES, SIZE, RANK = 4, 24, 4


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for k in range(N_IMAGES):
        Image.fromarray(fake_photo(rng, 30 + 4 * k, 40)).save(root / f"photo{k}.png")
    out = root.parent / "split"
    assert build("photos", out, images=root, size=SIZE).usable == N_IMAGES
    return out


@pytest.fixture(scope="module")
def generated(split_dir, tiny_ckpt, tmp_path_factory):
    """pixcolor_best (N=4), pixcolor_s1 and gt generated together, counting the sampled draws:
    (runs folder, the draws of each PixColor.sample call)."""
    calls: list[list[Draw]] = []
    real = PixColor.sample

    def counting(self, ys, draws, **kw):
        calls.append(list(draws))
        return real(self, ys, draws, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(PixColor, "sample", counting)
    runs = tmp_path_factory.mktemp("best") / "runs" / "photos"
    try:
        reports = generate(split_dir, runs, ["gt", "pixcolor_s1", "pixcolor_best"], batch_size=8,
                           options=MethodOptions(checkpoint=str(tiny_ckpt), rank_samples=RANK))
    finally:
        mp.undo()
    assert [r.status for r in reports] == ["done"] * 3
    return runs, calls


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_registered_with_the_pixcolor_methods():
    assert "pixcolor_best" in METHODS and "pixcolor_best" in DEFAULT_METHODS
    order = DEFAULT_METHODS.index
    assert order("pixcolor_s3") < order("pixcolor_best") < order("pixcolor_unrefined")


def test_rank_samples_below_one_is_refused():
    for bad in (0, -2, 2.0, True):
        with pytest.raises(ValueError, match="rank_samples"):
            MethodOptions(rank_samples=bad)
    assert MethodOptions().rank_samples == 10


def test_outputs_equal_best_of_and_render_of_each_image_alone(generated, tiny_ckpt):
    runs, _ = generated
    model = PixColor.load(tiny_ckpt)
    outputs = sorted((runs / "pixcolor_best").glob("*.png"))
    assert len(outputs) == N_IMAGES
    chosen = []
    for out in outputs:
        ys = [color.luma(_png(runs / "gt" / out.name))]
        best = model.best_of(ys, seed=1, n=RANK)
        np.testing.assert_array_equal(_png(out), model.render(ys, best.chroma)[0])
        chosen += best.index
    assert max(chosen) > 0  # some image's choice is not pixcolor_s1's sample


def test_one_candidate_is_pixcolor_s1(generated, tiny_ckpt):
    runs, _ = generated
    items = [Item(p.stem, _png(p)) for p in sorted((runs / "gt").glob("*.png"))]
    opts = MethodOptions(checkpoint=str(tiny_ckpt), rank_samples=1)
    for got, item in zip(create_method("pixcolor_best", opts).generate(items), items,
                         strict=True):
        np.testing.assert_array_equal(got, _png(runs / "pixcolor_s1" / f"{item.image_id}.png"))


def test_one_sampling_pass_shared_with_pixcolor_s1(generated):
    _, calls = generated
    assert len(calls) == 1  # one batch of both methods
    assert sorted(calls[0]) == sorted({Draw(i, 1, k) for i in range(N_IMAGES)
                                       for k in range(RANK)})  # s1's Draw(i, 1, 0) among them


def test_meta_records_n_and_the_seed(generated):
    runs, _ = generated
    meta = json.loads((runs / "pixcolor_best" / "meta.json").read_text())
    assert (meta["rank_samples"], meta["seed"], meta["refine"]) == (RANK, 1, True)
    assert f"of {RANK} samples with seed 1" in meta["description"]
    assert create_method("pixcolor_best").n == 10
