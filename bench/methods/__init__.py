"""Colorization methods by name: ground truth, PixColor seeds, the paper's ablations, others.

A registry in the style of timm's ``@register_model`` / ``create_model``::

    @register_method("gt")
    class GroundTruth(Method): ...

    method = create_method("pixcolor_s2", MethodOptions(checkpoint=None, device="cpu"))
    method = create_method("external:mine=/path/to/pngs")

Registered here (paper Fig. 5 and Fig. 6):

* ``gt`` (the preprocessed ground truth) and ``grayscale`` (its Y plane, no colour);
* ``gt_protocol``: a protocol split's ground truth through the protocol's colour round trip
  (its ``ground_truth/`` folder); not a default method, a run adds it for protocol splits;
* ``pixcolor_s1``, ``pixcolor_s2``, ``pixcolor_s3``: one PixColor sample with seed 1, 2, 3
  (``model.colorize(images, num_samples=1, seed=k)``);
* ``pixcolor_best``: of ``MethodOptions.rank_samples`` (10) seed-1 samples, the one the
  PixelCNN gives the highest log-likelihood (``model.best_of(ys, 1, 10)``, then ``render``);
* ``pixcolor_unrefined``: the seed-1 PixelCNN sample, bilinearly upsampled (Fig. 5);
* ``gt28_unrefined``: ground-truth chroma downsampled to 28 pixels and bilinearly upsampled
  (Fig. 3); ``gt28_refined``: the refinement network on that chroma (Fig. 5);
* ``cic``, ``lrac``, ``ltbc``: the baselines (:class:`BaselineMethod`), available when their
  checkpoint exists;
* ``external:NAME=DIR``: another implementation's outputs (:class:`ExternalMethod`).

Every method answers :meth:`Method.available` with a reason, so a run skips what it cannot
generate (e.g. no checkpoint) and says why. Methods whose :meth:`Method.batch_key` agree are
generated together by :meth:`Method.generate_group`: all PixColor methods share one model
and one sampling pass over every (image, seed) they need.
"""

from __future__ import annotations

from bench.methods import baseline_models, pixcolor_samples, simple
from bench.methods.external import ExternalMethod
from bench.methods.registry import (
    DEFAULT_METHODS,
    METHODS,
    NAME_RE,
    Item,
    Method,
    MethodOptions,
    Result,
    register_method,
)

__all__ = ["DEFAULT_METHODS", "METHODS", "ExternalMethod", "Item", "Method", "MethodOptions",
           "Result", "create_method", "register_method"]


def create_method(name: str, options: MethodOptions | None = None) -> Method:
    """Build a method by registry name, or ``external:NAME=DIR``.

    Args:
        name: registered name or external spec.
        options: the run's settings, passed to the factory as ``options=``; None: defaults.

    Raises:
        KeyError: unknown name (the message lists the registered ones).
        ValueError: a malformed external spec.
    """
    if name.startswith("external:"):
        spec = name[len("external:"):]
        ext_name, sep, folder = spec.partition("=")
        if not sep or not folder or not NAME_RE.match(ext_name):
            raise ValueError(f"bad external method {name!r}; use external:NAME=DIR")
        if ext_name in METHODS:
            raise ValueError(f"external method name {ext_name!r} is a registered method; "
                             "choose another NAME so its outputs stay apart")
        return ExternalMethod(ext_name, folder)
    method = METHODS[name](options=options or MethodOptions())
    method.name = name
    return method


# The families register in this order, which is the order of DEFAULT_METHODS (what a plain
# `bench run` generates): the simple methods, PixColor's, the baselines.
for _family in (simple, pixcolor_samples, baseline_models):
    _family.register()
