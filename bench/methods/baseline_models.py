"""``cic``, ``lrac``, ``ltbc``: the paper's baselines from the ``baselines`` package."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from bench.methods.registry import Item, Method, MethodOptions, Result, register_method


class BaselineMethod(Method):
    """A baseline of the paper's Fig. 6 (CIC, LRAC, LTBC) from the ``baselines`` package.

    Uses ``baselines.available(name, path)``, ``baselines.load(name, path, device)`` and the
    model's ``colorize(images, batch_size)``. The ``checkpoint`` option of a run is
    PixColor's, so each baseline takes its own from ``baseline_checkpoints`` (``{"cic":
    PATH}``, ``--baseline-checkpoint cic=PATH``); without one, the shipped demo checkpoint
    (``baselines/checkpoints/<name>_small.pt``). For ``cic`` PATH may also be the authors'
    ``colorization_release_v2-9b330a0b.pth``.
    """

    def __init__(self, baseline: str, options: MethodOptions | None = None) -> None:
        super().__init__(options)
        options = options or MethodOptions()
        self.baseline, self.device, self.batch_size = baseline, options.device, options.batch_size
        self.path = options.baseline_checkpoints.get(baseline)
        self._model = None

    def available(self) -> tuple[bool, str]:
        try:
            import baselines
        except ImportError as exc:
            return False, f"the baselines package is not importable ({exc})"
        return baselines.available(self.baseline, self.path)

    def _loaded(self):
        if self._model is None:
            import baselines

            self._model = baselines.load(self.baseline, self.path, device=self.device)
        return self._model

    def meta(self) -> dict:
        model = self._loaded()
        return {"description": f"baseline {self.baseline} (baselines.{self.baseline})",
                "checkpoint": model.checkpoint_path,
                "checkpoint_sha256": model.checkpoint_sha256,
                "preset": model.preset, "device": self.device}

    def generate(self, items: Sequence[Item]) -> list[Result]:
        return list(self._loaded().colorize([it.rgb for it in items],
                                            batch_size=self.batch_size))


def register() -> None:
    for name in ("cic", "lrac", "ltbc"):
        register_method(name)(partial(BaselineMethod, name))
