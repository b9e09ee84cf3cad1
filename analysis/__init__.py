"""Analysis of PixColor runs and Visual Turing Test answers (paper Sec. 4-5, Figs. 5-8).

Modules (import them directly; this package imports nothing heavy on its own):

* :mod:`analysis.metrics`: PSNR, SSIM, MS-SSIM, colourfulness, CIC AuC, histogram
  intersection, the metric registry and :func:`~analysis.evaluate.compute_metrics`.
* :mod:`analysis.ssim`: the SSIM / MS-SSIM implementation (Wang et al. 2003, 2004).
* :mod:`analysis.lab_stats`: marginal Lab a/b histograms (Fig. 7).
* :mod:`analysis.evaluate`: one pass over a runs folder (per-image metrics, histograms).
* :mod:`analysis.paper_metrics`: LPIPS and the DDColor/CT2 colourfulness in the registry;
  :mod:`analysis.fid_runs`: FID per method with a bootstrap interval;
  :mod:`analysis.fid_interval`: FID's estimate and interval (linearised or resampled);
  :mod:`analysis.metrics_cache`: the metrics pass, cached per image
  (:mod:`analysis.metrics_plan`, :mod:`analysis.image_scores`, :mod:`analysis.value_store`);
  :mod:`analysis.evaluation_cache`: the report's evaluation from that cache.
* :mod:`analysis.leaderboard`, :mod:`analysis.leaderboard_format`: every method x metric
  with intervals and best marks, as CSV, Markdown and LaTeX; published numbers in
  ``analysis/published.csv``.
* :mod:`analysis.vtt`, :mod:`analysis.bootstrap`: VTT scores with bootstrap intervals,
  paired comparisons, oracle score and the refinement ablation (Figs. 5, 6).
* :mod:`analysis.diversity`: MS-SSIM between samples of the same image (Fig. 8).
* :mod:`analysis.display`, :mod:`analysis.latex`: every table's formatting and LaTeX.
* :mod:`analysis.figures` (:mod:`analysis.figure_style`), :mod:`analysis.tables`,
  :mod:`analysis.report_summary`, :mod:`analysis.report_vtt`, :mod:`analysis.report_page`,
  :mod:`analysis.report_html`, :mod:`analysis.thumbnails`: report output.
* :mod:`analysis.report`: ``python analysis/report.py --runs runs/<split> --out DIR``.
* :mod:`analysis.synthetic`: generated runs folders and VTT exports for tests.
"""
