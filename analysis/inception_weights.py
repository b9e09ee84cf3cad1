"""Where the Inception-v3 weights of FID come from: the two variants, the file lookup, the hash.

Weights are never downloaded. :func:`find_weights` takes, in order: the path passed in,
the environment variable (``PIXCOLOR_FID_WEIGHTS`` for ``"fid"``,
``PIXCOLOR_FID_TV_WEIGHTS`` for ``"torchvision"``), then the reference file names in torch
hub's checkpoint folder (:func:`hub_checkpoints_dir`, by default
``~/.cache/torch/hub/checkpoints``); else :class:`WeightsNotFound` names the file, its
release URL and the variable. No torch import: a feature cache can be keyed on the
weights' sha256 without loading the network.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from pixcolor.io import file_sha256


def hub_checkpoints_dir() -> Path:
    """torch hub's checkpoint folder, as ``torch.hub.get_dir()`` resolves it: the folder
    set with ``torch.hub.set_dir`` (if torch is loaded), ``$TORCH_HOME/hub``, or
    ``$XDG_CACHE_HOME/torch/hub`` (``~/.cache/torch/hub``); plus ``checkpoints``."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "hub"):
        return Path(torch.hub.get_dir()) / "checkpoints"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    home = os.environ.get("TORCH_HOME") or os.path.join(cache, "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


@dataclass(frozen=True)
class Variant:
    """What distinguishes the two networks (see the module docstring)."""

    name: str
    num_classes: int  # classifier width, for strict loading of the reference files
    tf_pooling: bool  # TF graph: padding-free average pools, max pool in Mixed_7c
    aux_logits: bool  # the file holds torchvision's auxiliary classifier
    files: tuple[str, ...]  # reference file names, looked for in torch hub's checkpoints
    url: str  # where the reference file is published
    env: str  # environment variable naming a local file


VARIANTS = {
    "fid": Variant(
        "fid", 1008, True, False,
        ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth"),
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth (the same tensors as pytorch-fid's "
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth)",
        "PIXCOLOR_FID_WEIGHTS"),
    "torchvision": Variant(
        "torchvision", 1000, False, True, ("inception_v3_google-0cc3c7bd.pth",),
        "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        "PIXCOLOR_FID_TV_WEIGHTS"),
}


class WeightsNotFound(FileNotFoundError):
    """No Inception weights file: names the file, where it is published and the variable."""


def get_variant(name: str) -> Variant:
    """The :class:`Variant` called ``name``; ValueError naming the known ones otherwise."""
    if name not in VARIANTS:
        raise ValueError(f"unknown Inception variant {name!r}; choose one of {sorted(VARIANTS)}")
    return VARIANTS[name]


def find_weights(variant: str = "fid", path: str | os.PathLike | None = None) -> Path:
    """The local weights file of a variant (argument, environment variable, torch hub cache).

    Raises:
        WeightsNotFound: the given or configured file does not exist, or none was given and
            the hub cache holds none of the reference names. Nothing is downloaded.
    """
    v = get_variant(variant)
    hub = hub_checkpoints_dir()
    how = (f"download {v.url} and pass its path (--weights), set {v.env}=/path/to/file, or put "
           f"it in {hub} as {v.files[0]}; nothing is downloaded automatically")
    for given, source in ((path, "given"), (os.environ.get(v.env) or None, f"${v.env}")):
        if given is not None:
            if not Path(given).is_file():
                raise WeightsNotFound(f"{v.name} Inception weights {str(given)!r} ({source}) "
                                      f"do not exist; {how}")
            return Path(given)
    for name in v.files:
        if (hub / name).is_file():
            return hub / name
    raise WeightsNotFound(f"no {v.name} Inception weights ({' or '.join(v.files)}) found; {how}")


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: str | os.PathLike) -> str:
    """sha256 of a weights file, remembered per (path, size, mtime) for this process."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = file_sha256(path)
    return _SHA_MEMO[key]
