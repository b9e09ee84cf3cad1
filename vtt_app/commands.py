"""Click commands: ``init-db``, ``create-study``, ``create-oracle``, ``export``.

Usage (from the project root)::

    flask --app vtt_app init-db
    flask --app vtt_app create-study --name ctest500 --runs runs/ctest10k \\
        --methods pixcolor_s1,pixcolor_s2,pixcolor_s3,cic,lrac,ltbc --images 500 --raters-per-pair 5
    flask --app vtt_app create-oracle --study ctest500
    flask --app vtt_app export --study ctest500 --out out/vtt
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import func, select

from .db import create_all, get_session
from .models import Image, Pair, Study
from .study import StudyError, StudyOptions, create_oracle_stage, create_study


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
@click.option("--seed", default=0, show_default=True, help="seed of image sampling and plans")
def create_study_command(name: str | None, runs: Path, methods: str, **kw) -> None:
    """Create a study from a benchmark runs folder."""
    create_all()
    opts = StudyOptions(name=name or runs.resolve().name, runs=runs, methods=_split(methods),
                        timeout_s=kw.pop("timeout_s"), **kw)
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
    """Write responses.csv and raters.csv of a study."""
    from .export import export_study

    paths = export_study(get_session(), _study(study_name), out)
    click.echo("Wrote " + ", ".join(str(p) for p in paths))


def init_app(app: Flask) -> None:
    """Register the commands on ``app``."""
    for cmd in (init_db_command, create_study_command, create_oracle_command, export_command):
        app.cli.add_command(cmd)
