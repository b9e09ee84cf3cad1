"""Click commands: ``init-db``, ``create-study``, ``create-oracle``, ``export``, ``plan``,
``mturk-question``.

Usage (from the project root)::

    flask --app vtt_app init-db
    flask --app vtt_app create-study --name ctest500 --runs runs/ctest10k \\
        --methods pixcolor_s1,pixcolor_s2,pixcolor_s3,cic,lrac,ltbc --images 500 --raters-per-pair 5
    flask --app vtt_app create-oracle --study ctest500
    flask --app vtt_app export --study ctest500 --out out/vtt
    flask --app vtt_app plan --study ctest500      # check and print the pre-registered plan
    flask --app vtt_app mturk-question --study NAME --base-url https://vtt.example.org
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from . import platforms, prereg
from .db import create_all, get_session
from .models import Image, Pair, Study
from .study import (
    StudyError,
    StudyOptions,
    attention_summary,
    create_oracle_stage,
    create_study,
)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _study(name: str) -> Study:
    study = get_session().scalar(select(Study).where(Study.name == name))
    if study is None:
        raise click.ClickException(f"no study called {name!r}: see `create-study`")
    return study


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the database tables (existing data is kept)."""
    create_all()
    click.echo(f"Initialised {current_app.config['DATABASE_URL']}")
    click.echo(f"Admin token: ADMIN_TOKEN in {Path(current_app.instance_path) / 'config.py'}")


@click.command("create-study")
@with_appcontext
@click.option("--name", default=None, help="study name (default: the runs folder's name)")
@click.option("--runs", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="runs/<split> folder of the benchmark harness")
@click.option("--methods", required=True, help="comma-separated methods, e.g. pixcolor_s1,cic")
@click.option("--images", default=500, show_default=True, help="test images")
@click.option("--raters-per-pair", default=5, show_default=True, help="K raters per pair")
@click.option("--trials-per-rater", default=50, show_default=True, help="scored trials per rater")
@click.option("--practice", default=5, show_default=True, help="practice trials with feedback")
@click.option("--attention-rate", default=0.1, show_default=True,
              help="attention checks per scored trial")
@click.option("--attention-images", default=20, show_default=True,
              help="photos reserved for attention checks")
@click.option("--attention-max-fail-rate", default=0.25, show_default=True,
              help="flag raters failing more than this fraction of their checks")
@click.option("--attention-min-failures", default=2, show_default=True,
              help="...and at least this many of them")
@click.option("--exposure-ms", default=1000, show_default=True, help="time per image")
@click.option("--timeout-s", default=600, show_default=True,
              help="reclaim an unanswered assignment after this many seconds")
@click.option("--oracle-group", default="pixcolor_s1,pixcolor_s2,pixcolor_s3",
              show_default=True, help="seed methods of one model for the oracle stage")
@click.option("--seed", default=0, show_default=True,
              help="seed of the photo sampling (raters' plans come from a server secret)")
@click.option("--platform", type=click.Choice(["none", "prolific", "mturk"]), default="none",
              show_default=True, help="where raters come from (vtt_app/README.md)")
@click.option("--require-platform-id", "require_external_id", is_flag=True,
              help="refuse raters whose link carries no platform id")
@click.option("--completion-code", default="", help="Prolific: code for raters who finish")
@click.option("--screened-out-code", default="",
              help="Prolific: code for raters screened out by the attention checks")
def create_study_command(name: str | None, runs: Path, methods: str, platform: str,
                         **kw) -> None:
    """Create a study from a benchmark runs folder."""
    create_all()
    opts = StudyOptions(name=name or runs.resolve().name, runs=runs, methods=_split(methods),
                        timeout_s=kw.pop("timeout_s"),
                        platform="" if platform == "none" else platform, **kw)
    db = get_session()
    media = Path(current_app.config["MEDIA_DIR"]) / opts.name
    try:
        study = create_study(db, opts, media)
    except StudyError as err:
        db.rollback()
        raise click.ClickException(str(err)) from err
    db.commit()
    roles = Counter(db.scalars(select(Image.role).where(Image.study_id == study.id)))
    n_pairs = db.scalar(select(func.count(Pair.id)).where(Pair.study_id == study.id))
    click.echo(f"Created study {study.name!r}: {roles['test']} test images x "
               f"{len(opts.methods)} methods = {n_pairs} pairs, K = {study.raters_per_pair}; "
               f"{roles['practice']} practice and {roles['attention']} spare attention photos. "
               f"Raters start at /s/{study.name}/")
    click.echo(attention_summary(study))
    if roles["test"] < opts.images:
        click.echo(f"Warning: only {roles['test']} of the {opts.images} test images asked for "
                   f"exist in every method folder of {opts.runs}", err=True)


@click.command("create-oracle")
@with_appcontext
@click.option("--study", "study_name", required=True)
@click.option("--group", default="", help="seed methods (default: the study's oracle group)")
@click.option("--force", is_flag=True, help="even if some seed pairs lack K valid ratings")
def create_oracle_command(study_name: str, group: str, force: bool) -> None:
    """Add the oracle stage: per image, the seed most raters preferred, rated again."""
    db = get_session()
    study = _study(study_name)
    try:
        chosen = create_oracle_stage(db, study, _split(group) or None, force=force)
    except StudyError as err:
        db.rollback()
        raise click.ClickException(str(err)) from err
    db.commit()
    click.echo(f"Oracle stage of {study.name!r}: {len(chosen)} images")


@click.command("export")
@with_appcontext
@click.option("--study", "study_name", required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def export_command(study_name: str, out: Path) -> None:
    """Write responses.csv, raters.csv, plan.json and plan.md of a study."""
    from .export import export_study

    study = _study(study_name)
    paths = export_study(get_session(), study, out)
    click.echo("Wrote " + ", ".join(str(p) for p in paths)
               + (f", {out / 'plan.json'}, {out / 'plan.md'}" if study.plan_json else ""))
    try:
        prereg.stored_plan(study)
    except prereg.PlanError as err:
        click.echo(f"Warning: {err}", err=True)


@click.command("plan")
@with_appcontext
@click.option("--study", "study_name", required=True)
@click.option("--out", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="write plan.json and plan.md into this folder instead of printing plan.md")
def plan_command(study_name: str, out: Path | None) -> None:
    """Check a study's pre-registered plan against its SHA-256, then print or write it."""
    study = _study(study_name)
    try:
        plan = prereg.stored_plan(study)
    except prereg.PlanError as err:
        raise click.ClickException(str(err)) from err
    if out is None:
        click.echo(prereg.plan_markdown(plan, study.plan_sha256), nl=False)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in prereg.plan_files(study).items():
            (out / name).write_bytes(data)
        click.echo(f"Wrote {out / 'plan.json'}, {out / 'plan.md'}")
    click.echo(f"Plan SHA-256 {study.plan_sha256}: the stored plan matches it", err=True)


@click.command("mturk-question")
@with_appcontext
@click.option("--study", "study_name", required=True)
@click.option("--base-url", required=True,
              help="the HTTPS address raters reach the app at, e.g. https://vtt.example.org")
@click.option("--frame-height", default=0, show_default=True,
              help="iframe height in pixels (0: MTurk sizes it to the window)")
def mturk_question_command(study_name: str, base_url: str, frame_height: int) -> None:
    """Print the ExternalQuestion XML of an MTurk study (the HIT's Question)."""
    study = _study(study_name)
    if study.platform != "mturk":
        raise click.ClickException(f"study {study.name!r} is not an MTurk study: create it "
                                   "with --platform mturk (framing is allowed only for those)")
    url = f"{base_url.rstrip('/')}/s/{study.name}/"
    try:
        click.echo(platforms.external_question_xml(url, frame_height), nl=False)
    except platforms.PlatformError as err:
        raise click.ClickException(str(err)) from err


def init_app(app: Flask) -> None:
    """Register the commands on ``app``."""
    for cmd in (init_db_command, create_study_command, create_oracle_command, export_command,
                plan_command, mturk_question_command):
        app.cli.add_command(cmd)
