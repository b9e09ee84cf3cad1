"""Colourfulness against the truth (analysis.colourfulness), on images computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.colourfulness import (
    colorfulness,
    colorfulness_abs,
    colorfulness_gap,
    delta_colorfulness,
)
from analysis.synthetic import make_image


def uniform(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (4, 6, 3)).copy()


def halves(top: tuple[int, int, int], bottom: tuple[int, int, int]) -> np.ndarray:
    img = uniform(top)
    img[2:] = bottom
    return img


# (200, 100, 50) everywhere: rg = 100, yb = 150 - 50 = 100, no spread, both variants
ORANGE = 0.3 * math.hypot(100, 100)
# half red, half green: rg = +255 | -255 (std 255, mean 0), yb = 127.5 | 127.5 (mean 127.5);
# with absolute values rg = 255 | 255 (std 0, mean 255)
RED_GREEN_SIGNED = 255 + 0.3 * 127.5
RED_GREEN_ABS = 0.3 * math.hypot(255, 127.5)
# half red, half blue: |rg| = 255 | 0 (mean 127.5, std 127.5), |yb| = 127.5 | 255
# (mean 191.25, std 63.75)
RED_BLUE_ABS = math.hypot(127.5, 63.75) + 0.3 * math.hypot(127.5, 191.25)


def test_hand_computed_values_of_both_variants():
    red_green = halves((255, 0, 0), (0, 255, 0))
    assert colorfulness(uniform((200, 100, 50))) == pytest.approx(ORANGE, rel=1e-12)
    assert colorfulness_abs(uniform((200, 100, 50))) == pytest.approx(ORANGE, rel=1e-12)
    assert colorfulness(red_green) == pytest.approx(RED_GREEN_SIGNED, rel=1e-12)
    assert colorfulness_abs(red_green) == pytest.approx(RED_GREEN_ABS, rel=1e-12)
    red_blue = halves((255, 0, 0), (0, 0, 255))
    assert colorfulness_abs(red_blue) == pytest.approx(RED_BLUE_ABS, rel=1e-12)
    grey = np.repeat(make_image(np.random.default_rng(0), (16, 16))[..., :1], 3, -1)
    assert colorfulness_abs(grey) == 0.0


def test_delta_colorfulness_per_image():
    orange, red_green = uniform((200, 100, 50)), halves((255, 0, 0), (0, 255, 0))
    grey = uniform((128, 128, 128))
    assert delta_colorfulness(orange, red_green) == pytest.approx(RED_GREEN_SIGNED - ORANGE)
    assert delta_colorfulness(red_green, orange) == delta_colorfulness(orange, red_green)
    assert delta_colorfulness(grey, red_green, variant="abs") == pytest.approx(RED_GREEN_ABS)
    assert delta_colorfulness(red_green, red_green) == 0.0
    photo = make_image(np.random.default_rng(1), (20, 24))
    assert delta_colorfulness(photo, grey) == pytest.approx(colorfulness(photo))
    with pytest.raises(ValueError, match="variant"):
        delta_colorfulness(photo, grey, variant="mean_chroma")


def test_colorfulness_gap_compares_set_means():
    orange, red_green = uniform((200, 100, 50)), halves((255, 0, 0), (0, 255, 0))
    grey = uniform((128, 128, 128))
    assert colorfulness_gap([orange, grey], [red_green]) == pytest.approx(
        RED_GREEN_SIGNED - ORANGE / 2)
    # swapped pairs: every image is off, the set as a whole is not
    assert colorfulness_gap([orange, red_green], [red_green, orange]) == 0.0
    assert delta_colorfulness(orange, red_green) > 250
    with pytest.raises(ValueError, match="at least one"):
        colorfulness_gap([], [orange])
