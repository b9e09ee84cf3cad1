"""The report's headline: a short summary, then the leaderboard (its first table).

:func:`summary_section` says what the report is about (split, photos, methods), what was
computed and what was not, one line per reason (a missing weights file, no ratings, too few
samples for the diversity, the paper's numbers we do not have). :func:`leaderboard_section`
shows the one leaderboard of :mod:`analysis.leaderboard` (the table of
``python -m bench leaderboard``, with the VTT fool rate first when there are ratings) with
its caption.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis.display import label
from analysis.leaderboard import Leaderboard
from analysis.leaderboard_format import to_html, to_markdown
from analysis.report_html import Section
from analysis.report_page import Block

# The paper's numbers we could not take: its Fig. 7 (histogram intersections) is an image in
# our copy of the paper, with no number in the text.
PAPER_GAPS = ("The paper's Fig. 7 histogram-intersection numbers: not shown beside ours (our "
              "copy of the paper has them only inside the figure image, not as text).",)


@dataclass
class RunFacts:
    """What the summary reports about a run of the report.

    Attributes:
        split: the runs folder's name; runs: its path; truth: the reference folder.
        photos: photos evaluated; methods: the methods, in display order.
        metrics: the per-image metrics computed; missing: metric -> why not computed.
        answers, raters: VTT answers kept and raters (None: no ratings given).
        pairs: MS-SSIM sample pairs; sample_prefix: what makes a method a sample.
        histograms: whether the Lab a/b histograms were computed; skipped: values skipped.
    """

    split: str
    runs: str
    truth: str
    photos: int
    methods: list[str]
    metrics: list[str]
    missing: dict[str, str] = field(default_factory=dict)
    answers: int | None = None
    raters: int | None = None
    pairs: int = 0
    sample_prefix: str = "pixcolor_s"
    histograms: bool = True
    skipped: int = 0


def _computed(f: RunFacts) -> str:
    parts = [f"automatic metrics ({', '.join(label(m) for m in f.metrics)}; mean over photos "
             "with a 95% bootstrap interval)"]
    if f.histograms:
        parts.append("Lab a/b histograms and their intersections with the truth's (Fig. 7)")
    if f.pairs:
        parts.append(f"MS-SSIM diversity of {f.pairs:,} sample pairs (Fig. 8)")
    if f.answers is not None:
        parts.append(f"VTT fool rates from {f.answers:,} answers of {f.raters:,} raters "
                     "(Fig. 6), the oracle, paired comparisons, the refinement ablation "
                     "(Fig. 5)")
    return "Computed: " + "; ".join(parts) + "."


def _not_computed(f: RunFacts) -> list[str]:
    lines = [f"{label(m)}: {why}" for m, why in f.missing.items()]
    if f.answers is None:
        lines.append("VTT fool rates (Fig. 6), the oracle, paired comparisons and the "
                     "refinement ablation (Fig. 5): no ratings given (--responses: the VTT "
                     "app's responses.csv export).")
    if not f.pairs:
        lines.append(f"Sample diversity (Fig. 8): fewer than two {f.sample_prefix}* sample "
                     "folders with common photos.")
    if not f.histograms:
        lines.append(f"Lab histograms (Fig. 7): no truth folder '{f.truth}'.")
    if f.skipped:
        lines.append(f"{f.skipped:,} image or metric values could not be used "
                     "(tables/skipped.csv says which and why).")
    return [*lines, *PAPER_GAPS]


def summary_section(facts: RunFacts) -> Section:
    """The summary at the top of the report (no table: the leaderboard is the first)."""
    text = [f"Split {facts.split}: {facts.photos:,} photos (runs folder {facts.runs}); "
            f"truth: {facts.truth}. {len(facts.methods)} methods: "
            f"{', '.join(facts.methods)}.", _computed(facts), "Not computed, and why:"]
    return Section("Summary", text=text, bullets=_not_computed(facts))


def leaderboard_section(board: Leaderboard) -> Section:
    """The leaderboard (the page's first table) with its caption and column definitions."""
    md = to_markdown(board)
    table = md.split("\n\n", 2)[1]  # the table alone, without the title and the notes
    captions = [*board.notes,
                "Bold (★): best of its column among the methods that do not see the truth's "
                "colours; † reference, not ranked. CSV, Markdown and LaTeX (booktabs) in "
                "leaderboard/; published numbers of other papers there too, never mixed into "
                "these rows."]
    details = [f"{label(c.name)} ({c.name}, {'higher' if c.higher_is_better else 'lower'} "
               f"is better): {c.description}" for c in board.columns]
    return Section("Leaderboard", tables=[Block(to_html(board), table)], captions=captions,
                   details=details)


def vtt_counts(scores: pd.DataFrame | None) -> tuple[int | None, int | None]:
    """(answers, raters) of the main stage's scored methods, or (None, None)."""
    if scores is None:
        return None, None
    own = scores[~scores["method"].str.endswith(" (pooled)")]
    return int(own["n"].sum()), int(own["n_raters"].max()) if len(own) else 0
