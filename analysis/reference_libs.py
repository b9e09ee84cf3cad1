"""The reference libraries' own networks as a backend for FID features (``--fid-backend
reference``), for a user who wants the numbers from the code the papers ran.

* ``fid`` (the TF-ported Inception): torch-fidelity's ``FeatureExtractorInceptionV3`` with
  its own preprocessing (the uint8 batch goes in). Its module imports without torchvision
  when loaded from its file without the package's ``__init__`` (which does import it), so
  this backend runs wherever torch-fidelity is installed (``pip install --no-deps
  torch-fidelity``), CPU torch included.
* ``torchvision``: torchvision's ``inception_v3`` (``transform_input=True``, the final
  layer replaced by the identity) after :meth:`analysis.inception.InceptionV3.preprocess`;
  only where torchvision imports (its PyPI wheels need CUDA torch).

Features from either backend are cached apart from ours (they may differ by rounding); the
FID arithmetic is the same (:mod:`analysis.fid_interval`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from typing import Any

BACKENDS = ("ours", "reference")


class ReferenceUnavailable(RuntimeError):
    """The reference library of a variant cannot be imported here."""


def torch_fidelity_inception() -> type:
    """torch-fidelity's ``FeatureExtractorInceptionV3``, imported without its ``__init__``
    (a stub package over the installed files; ``sys.modules`` keeps the stub).

    Raises:
        ReferenceUnavailable: torch-fidelity is not installed.
    """
    if "torch_fidelity" not in sys.modules:
        spec = importlib.util.find_spec("torch_fidelity")
        if spec is None or not spec.submodule_search_locations:
            raise ReferenceUnavailable("torch-fidelity is not installed: pip install "
                                       "--no-deps torch-fidelity==0.4.0")
        pkg = types.ModuleType("torch_fidelity")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["torch_fidelity"] = pkg
    module = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    return module.FeatureExtractorInceptionV3


def unavailable(variant: str) -> str | None:
    """Why the reference backend of ``variant`` cannot run here (one line), or None."""
    try:
        if variant == "fid":
            torch_fidelity_inception()
        else:
            importlib.import_module("torchvision")
    except ReferenceUnavailable as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - torchvision fails in many ways without CUDA
        return (f"the reference backend of {variant} needs torchvision, which does not "
                f"import here ({type(err).__name__}: {str(err).splitlines()[0][:120]}); "
                "torchvision's PyPI wheels need CUDA torch; use --fid-backend ours")
    return None


class ReferenceNetwork:
    """The reference network of a variant behind :class:`analysis.inception.InceptionV3`'s
    two calls (``preprocess``, ``pool_features``)."""

    def __init__(self, variant: str, weights: str | os.PathLike, device: str = "cpu") -> None:
        import torch

        self.variant = variant
        if variant == "fid":
            cls = torch_fidelity_inception()
            self.net: Any = cls("inception-v3-compat", ["2048"],
                                feature_extractor_weights_path=str(weights))
            self._ours = None
        else:
            if (why := unavailable(variant)) is not None:
                raise ReferenceUnavailable(why)
            import torchvision

            from analysis.inception import InceptionV3

            net = torchvision.models.inception_v3(weights=None, aux_logits=True,
                                                  init_weights=False, transform_input=False)
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            net.fc = torch.nn.Identity()
            self.net = net
            self._ours = InceptionV3("torchvision")  # its preprocessing only
        self.net = self.net.to(device).eval()

    def preprocess(self, images: Any) -> Any:
        """uint8 (N, 3, H, W): as it is for torch-fidelity (it resizes itself), ours for
        torchvision's network."""
        return images if self._ours is None else self._ours.preprocess(images)

    def pool_features(self, x: Any) -> Any:
        """(N, 2048) float32 pool features."""
        return self.net(x)[0] if self._ours is None else self.net(x)
