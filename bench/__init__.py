"""Benchmark harness for PixColor (paper Sec. 4-5): splits, a method registry, generation.

``python -m bench run`` (what ``make bench`` calls) builds a split (the embedded demo photos
by default, or ctest10k/cval1k from a user's ILSVRC2012 validation folder), generates every
available method into ``runs/<split>/<method>/<image_id>.png`` with a ``meta.json`` per
method, and writes ``runs/<split>/metrics.csv``. Modules: :mod:`bench.splits`,
:mod:`bench.methods` (a package: the registry and the method families), :mod:`bench.generate`,
:mod:`bench.metrics`, :mod:`bench.pipeline`. Measurement tools (calibration, curves,
sampling speed, throughput, report speed) live in :mod:`tools`.
"""
