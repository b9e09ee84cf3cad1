"""Creating a study from a benchmark runs folder, and its oracle stage (paper Sec. 4, 5.1).

The benchmark harness writes ``runs/<split>/<method>/<image_id>.png`` with method ``gt`` for
the ground truth. A study records each file's SHA-256 (provenance) and serves normalised
copies of them from its media folder (:mod:`vtt_app.media`: no metadata, a byte size set by
the image size alone), so that nothing in a response tells the real image from the
generated one and a runs folder rewritten after ``create-study`` changes nothing raters see.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from pixcolor.io import ImageLoadError, file_sha256, load_rgb

from . import media, platforms, prereg
from .assignment import n_attention, scored_per_rater
from .attention import flag_probability, mean_chroma, rotate_hue_lab, smallest_flagging_rate
from .models import Image, Method, Pair, Rater, Response, Study, Trial

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
GT = "gt"


class StudyError(ValueError):
    """A study cannot be created or changed as asked; the message says why and what to do."""


@dataclass
class StudyOptions:
    """Options of ``create-study`` (see ``flask --app vtt_app create-study --help``)."""

    name: str  # study name, unique in the database
    runs: Path  # runs/<split> folder written by the benchmark harness
    methods: list[str]  # compared methods (folders next to gt/)
    images: int = 500  # test images (paper: 500)
    raters_per_pair: int = 5  # K distinct raters per (image, method) pair (paper: 5)
    trials_per_rater: int = 50  # scored trials per rater (attention checks not counted)
    practice: int = 5  # practice trials with feedback, excluded from scores
    attention_rate: float = 0.1  # attention checks per scored trial
    attention_images: int = 20  # photos reserved for attention checks
    attention_max_fail_rate: float = 0.25  # flag a rater above this failed fraction
    attention_min_failures: int = 2  # ...and with at least this many failed checks
    exposure_ms: int = 1000  # presentation time of each image (paper: 1 s)
    timeout_s: int = 600  # an unanswered assignment is reclaimed after this
    oracle_group: str = "pixcolor_s1,pixcolor_s2,pixcolor_s3"  # seeds of one model
    seed: int = 0  # which photos and pairs (each rater's plan comes from a server secret)
    platform: str = ""  # "" (a plain link), "prolific" or "mturk" (vtt_app.platforms)
    require_external_id: bool = False  # refuse raters whose link carries no platform id
    completion_code: str = ""  # Prolific: the code raters who finish are sent back with
    screened_out_code: str = ""  # Prolific: the code for raters screened out by attention


def _stems(folder: Path) -> set[str]:
    if not folder.is_dir():
        raise StudyError(f"{folder} is not a folder: run the benchmark harness first")
    return {p.stem for p in folder.glob("*.png") if NAME_RE.match(p.stem)}


def create_study(session: Session, opts: StudyOptions, media_dir: Path) -> Study:
    """Create a study, its images, methods, main-stage pairs and attention images.

    Args:
        session: database session (committed by the caller).
        opts: the options.
        media_dir: folder for generated files (attention images) of this study.

    Returns:
        The new study.

    Raises:
        StudyError: bad name, missing folders, too few images or a name already taken.
    """
    runs = opts.runs.resolve()
    _check_names(session, opts)
    try:
        platforms.check_settings(opts.platform, opts.completion_code, opts.screened_out_code)
    except platforms.PlatformError as err:
        raise StudyError(str(err)) from err
    photos = _choose_images(opts, runs)
    test, attention = photos.test, photos.attention
    study = Study(
        name=opts.name,
        runs_dir=str(runs),
        raters_per_pair=opts.raters_per_pair,
        trials_per_rater=opts.trials_per_rater,
        max_scored=len(test) - len(set(attention) & set(test)),
        attention_images=len(attention),
        n_practice=opts.practice,
        attention_rate=opts.attention_rate,
        attention_max_fail_rate=opts.attention_max_fail_rate,
        attention_min_failures=opts.attention_min_failures,
        exposure_ms=opts.exposure_ms,
        assignment_timeout_s=opts.timeout_s,
        oracle_group=opts.oracle_group,
        seed=opts.seed,
        platform=opts.platform,
        require_external_id=opts.require_external_id,
        completion_code=opts.completion_code,
        screened_out_code=opts.screened_out_code,
    )
    check_attention_plan(study)
    session.add(study)
    session.flush()
    methods = {m: Method(study_id=study.id, name=m, role="method") for m in opts.methods}
    session.add_all([Method(study_id=study.id, name=GT, role="gt"), *methods.values()])
    images = _add_images(session, study, opts, media_dir, photos)
    for stem in test:
        for m in opts.methods:
            path = runs / m / f"{stem}.png"
            session.add(Pair(study_id=study.id, image_id=images[stem].id,
                             method_id=methods[m].id, stage="main", source_method=m,
                             file_sha256=file_sha256(path),
                             served=_served_copy(path, images[stem], media_dir),
                             raters_needed=opts.raters_per_pair))
    session.flush()
    prereg.freeze(session, study)  # the pre-registered plan, frozen with its SHA-256
    return study


def check_attention_plan(study: Study) -> None:
    """Refuse a plan whose attention rule can never flag anyone (checks planned but fewer
    than the failures the rule needs, or a fail rate no rater can exceed).

    Raises:
        StudyError: naming the numbers and the options that would make the rule work.
    """
    planned = n_attention(study)
    if study.attention_rate <= 0:
        return  # no checks at all: a stated choice, reported by create-study
    if study.attention_max_fail_rate >= 1:
        raise StudyError(f"--attention-max-fail-rate {study.attention_max_fail_rate} can never "
                         "be exceeded: no rater could be flagged; use a rate below 1")
    if planned >= study.attention_min_failures:
        return
    scored = scored_per_rater(study)
    need = smallest_flagging_rate(scored, study.attention_min_failures)
    more = (f"raise --attention-rate to {need}" if round(need * scored) <= study.attention_images
            else f"give raters more scored trials or attention photos (--attention-images "
                 f"{study.attention_images} allows {study.attention_images} checks)")
    raise StudyError(
        f"the attention rule can never flag anyone: each rater gets {planned} attention "
        f"check(s) (round({study.attention_rate} x {scored} scored trials)), but a rater is "
        f"flagged only after {study.attention_min_failures} failed checks "
        f"(--attention-min-failures). Either {more}, or lower --attention-min-failures to "
        f"{max(planned, 1)}, or run without checks (--attention-rate 0).")


def attention_summary(study: Study) -> str:
    """One line on what the attention rule catches: the chance that a rater answering at
    random (fails half the checks) and an attentive one (fails 1 in 10) are flagged."""
    planned = n_attention(study)
    if planned == 0:
        return "No attention checks: no rater can be flagged."
    rule = (study.attention_max_fail_rate, study.attention_min_failures)
    return (f"{planned} attention check(s) per rater; flagged above "
            f"{study.attention_max_fail_rate:.0%} failed and at least "
            f"{study.attention_min_failures}: a rater answering at random is flagged with "
            f"probability {flag_probability(planned, *rule, 0.5):.2f}, an attentive one "
            f"failing 1 check in 10 with {flag_probability(planned, *rule, 0.1):.2f}.")


def _check_names(session: Session, opts: StudyOptions) -> None:
    for name in [opts.name, *opts.methods]:
        if not NAME_RE.match(name):
            raise StudyError(f"invalid name {name!r}: use letters, digits, '_', '.', '-'")
    if not opts.methods or GT in opts.methods:
        raise StudyError("--methods must list the compared methods, without gt")
    if session.scalar(select(Study).where(Study.name == opts.name)) is not None:
        raise StudyError(f"study {opts.name!r} exists already: choose another --name")


@dataclass
class Photos:
    """The photo names of a study by role (a photo may be both test and attention)."""

    practice: list[str]
    test: list[str]
    attention: list[str]


def _choose_images(opts: StudyOptions, runs: Path) -> Photos:
    """The practice, test and attention photos: a seeded shuffle of the photos present in gt/
    and every method folder; attention photos preferably outside the test set (they then
    never compete with pair balance), those of highest mean chroma among a few candidates."""
    gt_stems = _stems(runs / GT)
    common = set(gt_stems)
    for m in opts.methods:
        common &= _stems(runs / m)
    ids = sorted(common)
    rng = np.random.default_rng(opts.seed)
    ids = [ids[i] for i in rng.permutation(len(ids))]
    if len(ids) < opts.practice + 1:
        raise StudyError(
            f"{runs} has {len(ids)} images present in gt/ and every method folder; "
            f"need at least --practice + 1 = {opts.practice + 1}"
        )
    practice = ids[: opts.practice]
    test = ids[opts.practice : opts.practice + opts.images]
    spare = sorted(gt_stems - set(practice) - set(test))
    spare = [spare[i] for i in rng.permutation(len(spare))][: 4 * opts.attention_images]
    pool = spare if len(spare) >= opts.attention_images else spare + test
    pool = pool[: max(4 * opts.attention_images, opts.attention_images)]
    scored = sorted(pool, key=lambda s: -mean_chroma(_read(runs / GT / f"{s}.png")))
    return Photos(practice, test, scored[: opts.attention_images])


def _add_images(session: Session, study: Study, opts: StudyOptions, media_dir: Path,
                photos: Photos) -> dict[str, Image]:
    """The study's Image rows with their served copies (and attention images)."""
    runs, attention = Path(study.runs_dir), set(photos.attention)
    images: dict[str, Image] = {}
    for stem, role in ([(s, "practice") for s in photos.practice]
                       + [(s, "test") for s in photos.test]):
        images[stem] = Image(study_id=study.id, name=stem, role=role)
    for stem in photos.attention:
        images.setdefault(stem, Image(study_id=study.id, name=stem, role="attention"))
    for stem, image in images.items():
        gt_path = runs / GT / f"{stem}.png"
        image.gt_sha256 = file_sha256(gt_path)
        rgb = _read(gt_path)
        image.gt_served = str(media.store(rgb, media_dir)[0])
        if stem in attention:
            image.attention_file = str(media.store(rotate_hue_lab(rgb), media_dir)[0])
        if image.role == "practice":
            image.practice_served = json.dumps({
                m: _served_copy(runs / m / f"{stem}.png", image, media_dir)
                for m in opts.methods})
    session.add_all(images.values())
    session.flush()
    return images


def _read(path: Path) -> np.ndarray:
    try:
        return load_rgb(path)
    except ImageLoadError as exc:
        raise StudyError(f"{path} cannot be read ({exc.reason}): regenerate it or leave out "
                         "its method") from exc


def _served_copy(path: Path, image: Image, media_dir: Path) -> str:
    """The normalised copy of a method's image; it must have the ground truth's size (the
    two images of a trial then weigh the same)."""
    rgb = _read(path)
    gt_size = Path(image.gt_served).stat().st_size
    out, _ = media.store(rgb, media_dir)
    if out.stat().st_size != gt_size:
        raise StudyError(f"{path} is {rgb.shape[1]}x{rgb.shape[0]}, not the size of its "
                         f"ground truth: regenerate it at the ground truth's size")
    return str(out)


def oracle_method_name(group: list[str]) -> str:
    """``pixcolor_s1, pixcolor_s2, ...`` -> ``pixcolor_oracle``."""
    prefix = os.path.commonprefix(group).rstrip("_-")
    prefix = re.sub(r"[_-](s|seed)$", "", prefix).rstrip("_-")
    return f"{prefix}_oracle" if prefix else "oracle"


def seed_preferences(session: Session, study: Study, group: list[str]) -> dict[int, dict]:
    """Per test image, how many valid, unflagged raters preferred each seed's sample.

    Returns:
        ``{image_pk: {method: (n_chose_generated, n_valid)}}``.
    """
    rows = session.execute(
        select(
            Trial.image_id,
            Trial.method_name,
            func.count(Response.id),
            func.sum(case((Response.chose_generated.is_(True), 1), else_=0)),
        )
        .join(Response, Response.trial_id == Trial.id)
        .join(Rater, Rater.id == Trial.rater_id)
        .where(
            and_(
                Rater.study_id == study.id,
                Rater.flagged.is_(False),
                Trial.kind == "test",
                Response.valid.is_(True),
                Trial.method_name.in_(group),
            )
        )
        .group_by(Trial.image_id, Trial.method_name)
    ).all()
    prefs: dict[int, dict] = {}
    for image_pk, method, n_valid, n_gen in rows:
        prefs.setdefault(image_pk, {})[method] = (int(n_gen or 0), int(n_valid))
    return prefs


def create_oracle_stage(
    session: Session, study: Study, group: list[str] | None = None, force: bool = False
) -> dict[str, str]:
    """Add the oracle stage: per image, the seed most raters preferred is rated again.

    The seed with the highest fraction of valid, unflagged raters choosing it over the
    ground truth wins (paper Sec. 5.1: "the one that the most raters liked"); ties go to the
    seed listed first in the group. The new pairs (stage ``oracle``) need K raters each; a
    rater never sees a photo twice, so they are rated by raters who did not rate that image
    in the first stage.

    Args:
        session: database session (committed by the caller).
        study: the study.
        group: seed methods of one model; default the study's ``oracle_group``.
        force: create it even if some seed pairs have fewer than K valid ratings.

    Returns:
        ``{image name: chosen seed method}``.

    Raises:
        StudyError: unknown seeds, an oracle stage already there, or an incomplete stage.
    """
    group = _oracle_group(session, study, group)
    prefs = seed_preferences(session, study, group)
    by_image, short = _seed_pairs(session, study, group, prefs)
    if short and not force:
        raise StudyError(
            f"{short} pairs of {group} have fewer than {study.raters_per_pair} valid ratings: "
            "finish the main stage first, or pass --force"
        )
    oracle = Method(study_id=study.id, name=oracle_method_name(group), role="oracle")
    session.add(oracle)
    session.flush()
    chosen: dict[str, str] = {}
    for image_pk, seeds in sorted(by_image.items()):
        best = _best_seed(group, seeds, prefs.get(image_pk, {}))
        pair = seeds[best]
        session.add(
            Pair(
                study_id=study.id,
                image_id=image_pk,
                method_id=oracle.id,
                stage="oracle",
                source_method=best,
                file_sha256=pair.file_sha256,
                served=pair.served,
                raters_needed=study.raters_per_pair,
            )
        )
        chosen[pair.image.name] = best
    session.flush()
    return chosen


def _seed_pairs(session: Session, study: Study, group: list[str], prefs: dict
                ) -> tuple[dict[int, dict[str, Pair]], int]:
    """The main stage's pairs of the seeds in ``group`` by image and seed, and how many of
    them have fewer than K valid ratings in ``prefs``."""
    main_pairs = session.scalars(
        select(Pair).where(
            Pair.study_id == study.id, Pair.stage == "main", Pair.source_method.in_(group)
        )
    ).all()
    by_image: dict[int, dict[str, Pair]] = {}
    short = 0
    for p in main_pairs:
        by_image.setdefault(p.image_id, {})[p.source_method] = p
        if prefs.get(p.image_id, {}).get(p.source_method, (0, 0))[1] < study.raters_per_pair:
            short += 1
    return by_image, short


def _oracle_group(session: Session, study: Study, group: list[str] | None) -> list[str]:
    """The seed methods of the oracle stage (default the study's ``oracle_group``), checked:
    two or more of the study's methods, and no oracle stage yet."""
    group = group or [g for g in study.oracle_group.split(",") if g]
    names = {m.name: m for m in study.methods}
    missing = [g for g in group if g not in names or names[g].role != "method"]
    if len(group) < 2 or missing:
        raise StudyError(f"oracle group {group} needs >= 2 methods of the study; unknown {missing}")
    if session.scalar(select(Pair.id).where(Pair.study_id == study.id, Pair.stage == "oracle")):
        raise StudyError(f"study {study.name!r} already has an oracle stage")
    return group


def _best_seed(group: list[str], seeds: dict, counts: dict) -> str:
    """The seed of ``group`` (present in ``seeds``) with the highest fraction of raters
    choosing it (``counts``: method -> (n_chose_generated, n_valid)); ties go to the seed
    listed first."""

    def score(m: str) -> float:
        n_gen, n_valid = counts.get(m, (0, 0))
        return n_gen / n_valid if n_valid else 0.0

    return max((g for g in group if g in seeds), key=lambda m: (score(m), -group.index(m)))
