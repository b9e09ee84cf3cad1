"""Measurement tools run from a checkout (``python -m tools.<name>``), apart from the
benchmark harness (:mod:`bench`):

* :mod:`tools.calibration`: a PixColor model's held-out cross-entropy, its samples' chroma
  marginals and casts (single samples' global colour error against a grey output's);
* :mod:`tools.curves`: training curves from run folders' ``log.csv``;
* :mod:`tools.sampling_speed`: naive vs cached sampling, and end-to-end seconds (``make speed``);
* :mod:`tools.throughput`: images per second of a whole ctest10k-sized run;
* :mod:`tools.report_speed`: the time of ``analysis/report.py`` on generated runs
  (``make report-speed``).
"""
