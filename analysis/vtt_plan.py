"""Plan the size of a Visual Turing Test (paper Sec. 4, Fig. 6) by simulating it.

Usage (from the project root)::

    python -m analysis.vtt_plan --rates pixcolor=0.33,cic=0.2,ltbc=0.25 --images 500
    python -m analysis.vtt_plan --pilot out/pilot/responses.csv --target-halfwidth 1.0

Model (our reading; the paper gives none): rater r chooses the generated image of method
m on photo i with probability ``expit(a_m + u_r + v_i)``; ``u_r ~ N(0, rater_sd^2)`` (a
rater's leaning), ``v_i ~ N(0, image_sd^2)`` (how easy the photo is, shared by the
methods), logit scale; ``a_m`` makes the population fool rate ``E[expit(a_m + u + v)]``
the rate asked for. A study is simulated as the app assigns trials (:func:`assign`) and
scored by :func:`analysis.vtt.vtt_scores` with ``resample="raters_images"`` (the report's
default); the prediction is the median over simulated studies of half the length of the
95% interval, in percentage points.
"""

from __future__ import annotations

import argparse
import re
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

from analysis.runs import order_methods
from analysis.vtt import ResponsesFormatError, apply_exclusions, read_responses, vtt_scores

DEFAULT_RATER_SD = 0.5  # logit: middle 80% of raters fooled 20-48% of the time at rate 0.33
DEFAULT_IMAGE_SD = 1.0  # logit: middle 80% of photos fool 12-64% of raters at rate 0.33
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # the app's method names
_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(40)
_WEIGHTS = _WEIGHTS / np.sqrt(np.pi)  # sum(w f(sqrt(2) sd x)) = E f(z), z ~ N(0, sd^2)


class PlanError(ValueError):
    """A planning input is unusable; the message names the flag and what to do."""


@dataclass(frozen=True)
class Model:
    """Answer model (module doc): ``rates`` method -> fool rate in (0, 1); sds >= 0, logit."""

    rates: dict[str, float]
    rater_sd: float = DEFAULT_RATER_SD
    image_sd: float = DEFAULT_IMAGE_SD


def intercept(rate: float, sd: float) -> float:
    """The ``a`` with ``E[expit(a + z)] = rate`` for ``z ~ N(0, sd^2)``."""
    z = np.sqrt(2.0) * sd * _NODES
    return optimize.brentq(lambda a: _WEIGHTS @ special.expit(a + z) - rate, -40.0, 40.0)


def moments(rate: float, rater_sd: float, image_sd: float) -> tuple[float, float]:
    """Model covariances of two answers to one method: (same photo, different raters:
    ``Var_v E_u[p]``; same rater, different photos: ``Var_u E_v[p]``)."""
    a = intercept(rate, float(np.hypot(rater_sd, image_sd)))
    zu, zv = np.sqrt(2.0) * rater_sd * _NODES, np.sqrt(2.0) * image_sd * _NODES
    p = special.expit(a + zu[:, None] + zv[None, :])  # (rater node, image node)
    per_image, per_rater = _WEIGHTS @ p, p @ _WEIGHTS
    return (float(_WEIGHTS @ per_image**2 - (_WEIGHTS @ per_image) ** 2),
            float(_WEIGHTS @ per_rater**2 - (_WEIGHTS @ per_rater) ** 2))


@dataclass(frozen=True)
class Sizes:
    """A study's size: ``raters`` planned (N), ``images`` (I), ``methods`` (M), ``k``
    raters per (image, method) pair and ``trials`` scored per rater (T <= I)."""

    raters: int
    images: int
    methods: int
    k: int
    trials: int

    @property
    def answers(self) -> int:  # scored answers: images x methods x K
        return self.images * self.methods * self.k


def resolve_sizes(methods: int, raters: int | None = None, images: int | None = None,
                  k: int = 5, trials: int | None = None) -> tuple[Sizes, list[str]]:
    """Complete and check the sizes (``raters x trials >= images x methods x K``) and say
    what was derived: raters = ceil(answers / trials) from images (500 if neither given),
    images = floor(raters x trials / (methods x K)) from raters, trials = ceil(answers /
    raters) from both (else the app's 50). PlanError for sizes that cannot fill every pair.
    """
    for flag, v in zip(("--raters", "--images", "--k", "--trials-per-rater"),
                       (raters, images, k, trials), strict=True):
        if v is not None and v < 1:
            raise PlanError(f"{flag} must be at least 1, got {v}")
    mk, notes = methods * k, []
    if raters is not None and images is not None and trials is None:
        trials = -(-images * mk // raters)
        notes.append(f"derived --trials-per-rater {trials} = ceil({images} images x "
                     f"{methods} methods x K {k} / {raters} raters)")
    trials = 50 if trials is None else trials
    if raters is None:
        images = 500 if images is None else images
        raters = max(-(-images * mk // min(trials, images)), mk)
        notes.append(f"derived --raters {raters} = ceil({images} images x {methods} methods"
                     f" x K {k} / {min(trials, images)} trials)")
    elif images is None:
        images = raters * trials // mk  # 0 when too few raters: refused below
        notes.append(f"derived --images {images} = floor({raters} raters x {trials} "
                     f"trials / ({methods} methods x K {k}))")
    sizes = Sizes(raters, images, methods, k, min(trials, images))
    if raters < mk:
        raise PlanError(f"--raters {raters} < {methods} methods x --k {k}: each photo "
                        "needs that many distinct raters")
    if raters * sizes.trials < sizes.answers:
        raise PlanError(f"--raters {raters} x --trials-per-rater {sizes.trials} = "
                        f"{raters * sizes.trials} trials < --images {images} x {methods} "
                        f"methods x --k {k} = {sizes.answers} answers needed")
    return sizes, notes


def assign(sizes: Sizes, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (``image * methods + method``) to raters as the app assigns them, raters one
    after another: the pairs with the fewest raters so far first, ties in random order (a
    random order per level), photos a rater has seen skipped (they stay first in line).
    Returns (rater codes, pair codes), int64 (answers,): each pair K times, by K distinct
    raters; no rater sees a photo twice."""
    n_pairs, m = sizes.images * sizes.methods, sizes.methods
    queue = deque(np.concatenate([rng.permutation(n_pairs) for _ in range(sizes.k)]).tolist())
    raters, pairs, rater = [], [], 0
    while queue:
        seen, skipped = set(), []
        while queue and len(seen) < sizes.trials:
            pair = queue.popleft()
            if pair // m in seen:
                skipped.append(pair)
                continue
            seen.add(pair // m)
            raters.append(rater)
            pairs.append(pair)
        queue.extendleft(reversed(skipped))
        rater += 1
    return np.asarray(raters, dtype=np.int64), np.asarray(pairs, dtype=np.int64)


def simulate_study(model: Model, sizes: Sizes, rng: np.random.Generator) -> pd.DataFrame:
    """One simulated study's scored answers, one row each, in the ``responses.csv`` export
    format (stage main, kind test, valid 1, rater_flagged 0; ids ``r00000``, ``img00000``)."""
    names = list(model.rates)
    rater, pair = assign(sizes, rng)
    image, method = pair // len(names), pair % len(names)
    sd = float(np.hypot(model.rater_sd, model.image_sd))
    a = np.array([intercept(r, sd) for r in model.rates.values()])
    u = rng.normal(0.0, model.rater_sd, rater.max() + 1)
    v = rng.normal(0.0, model.image_sd, sizes.images)
    p = special.expit(a[method] + u[rater] + v[image])
    labels = np.asarray(names, dtype=object)[method]
    return pd.DataFrame({
        "study": "plan", "stage": "main", "rater_id": [f"r{r:05d}" for r in rater],
        "image_id": [f"img{i:05d}" for i in image], "method": labels, "source_method": labels,
        "generated_first": rng.integers(0, 2, len(rater)),
        "chose_generated": (rng.random(len(rater)) < p).astype(int), "kind": "test",
        "valid": 1, "invalid_reason": "", "response_ms": np.nan, "rater_flagged": 0})


def predict(model: Model, sizes: Sizes, n_studies: int = 5, n_resamples: int = 2000,
            seed: int = 0) -> pd.DataFrame:
    """Half the length of each method's 95% interval over ``n_studies`` simulated studies.

    Returns:
        Columns ``method``, ``rate`` (percent), ``halfwidth`` (points, the median of
        ``vtt_scores(..., "raters_images")`` over the studies), ``spread`` (max - min);
        ``attrs["raters_used"]``: the most raters a simulated study needed.
    """
    rows, used = [], 0
    for study in range(n_studies):
        df = simulate_study(model, sizes, np.random.default_rng([seed, study]))
        used = max(used, df["rater_id"].nunique())
        s = vtt_scores(df, "raters_images", n_resamples, np.random.default_rng([seed, study, 1]))
        rows.append(pd.Series(50.0 * (s["high"] - s["low"]).to_numpy(), index=s["method"]))
    table = pd.concat(rows, axis=1).reindex(list(model.rates))
    out = pd.DataFrame({"method": table.index, "rate": [100 * r for r in model.rates.values()],
                        "halfwidth": table.median(axis=1).to_numpy(),
                        "spread": (table.max(axis=1) - table.min(axis=1)).to_numpy()})
    out.attrs["raters_used"] = used
    return out


def search(model: Model, target: float, k: int = 5, trials: int = 50, images: int = 500,
           n_studies: int = 5, n_resamples: int = 500, seed: int = 0, max_steps: int = 6
           ) -> tuple[Sizes, pd.DataFrame, list[tuple[int, int, float]]]:
    """The smallest study whose worst method's half-width is at most ``target`` points:
    from ``images`` (raters follow), the next size is ``images x (worst / 0.97 target)^2``
    up to a multiple of 10 (half-widths go as 1 / sqrt(size); 3% below the target is a
    margin for the estimate's Monte Carlo error) until one is within 10% below.

    Returns:
        (sizes, :func:`predict` table there, trace of (images, raters, worst) per step).

    Raises:
        PlanError: no size met the target in ``max_steps``.
    """
    trace, best = [], None
    for _ in range(max_steps):
        sizes, _ = resolve_sizes(len(model.rates), images=images, k=k, trials=trials)
        table = predict(model, sizes, n_studies, n_resamples, seed)
        worst = float(table["halfwidth"].max())
        trace.append((sizes.images, sizes.raters, worst))
        if worst <= target and (best is None or sizes.images < best[0].images):
            best = (sizes, table)
        images = max(10, int(np.ceil(images * (worst / (0.97 * target)) ** 2 / 10)) * 10)
        if best is not None and (worst >= 0.9 * target or images in [t[0] for t in trace]):
            break
    if best is None:
        raise PlanError(f"--target-halfwidth {target}: not met in {max_steps} steps (last "
                        f"{trace[-1][2]:.2f} points at {trace[-1][0]} images)")
    return best[0], best[1], trace


def pair_covariances(kept: pd.DataFrame, key: str) -> pd.Series:
    """Per method, the mean product of residuals (answer - method's rate) over pairs of its
    answers sharing ``key``: ``"image_id"`` (then by different raters) or ``"rater_id"``
    (then on different photos). NaN where a method has no such pair."""
    y = kept["chose_generated"].astype(float)
    r = y - y.groupby(kept["method"]).transform("mean")
    g = pd.DataFrame({"r": r, "r2": r * r, "method": kept["method"], "key": kept[key]})
    cell = g.groupby(["method", "key"]).agg(s=("r", "sum"), q=("r2", "sum"), n=("r", "size"))
    cell = cell.assign(num=cell["s"] ** 2 - cell["q"], pairs=cell["n"] * (cell["n"] - 1))
    per = cell.groupby(level="method")[["num", "pairs"]].sum()
    return per["num"] / per["pairs"].where(per["pairs"] > 0)


def estimate_from_pilot(responses: pd.DataFrame) -> tuple[Model, pd.DataFrame]:
    """Rates and rater/image spreads from a pilot export (method of moments).

    Rates: each method's fraction of counted answers (the report's exclusions). Spreads:
    the (rater_sd, image_sd) whose model covariances (:func:`moments` at each method's rate)
    best match the pilot's (:func:`pair_covariances`), least squares weighted by answers.
    Returns (model, per method ``rate``, ``answers``, ``cov_image``, ``cov_rater``).
    """
    kept, _ = apply_exclusions(responses)
    by = kept.groupby("method")["chose_generated"]
    table = pd.DataFrame({"rate": by.mean(), "answers": by.size(),
                          "cov_image": pair_covariances(kept, "image_id"),
                          "cov_rater": pair_covariances(kept, "rater_id")})
    table = table.loc[order_methods(table.index.tolist())]
    ok = table.dropna().query("0 < rate < 1")
    if ok.empty:
        raise PlanError("--pilot: no method has counted answers (main stage, kind test, valid,"
                        " unflagged), two per photo and per rater and a rate in (0, 1)")

    def misfit(x: np.ndarray) -> np.ndarray:
        model = np.array([moments(r, x[0], x[1]) for r in ok["rate"]])
        obs = ok[["cov_image", "cov_rater"]].to_numpy()
        return (np.sqrt(ok["answers"].to_numpy())[:, None] * (model - obs)).ravel()

    fit = optimize.least_squares(misfit, x0=[0.5, 0.5], bounds=([0, 0], [6, 6]))
    rates = {m: float(r) for m, r in table["rate"].items()}
    return Model(rates, float(fit.x[0]), float(fit.x[1])), table


def parse_rates(text: str) -> dict[str, float]:
    """``"pixcolor=0.33,cic=0.2"`` -> ``{"pixcolor": 0.33, "cic": 0.2}``; PlanError for a
    malformed item, a name the app refuses, ``gt``, a repeat or a rate outside (0, 1)."""
    rates: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, value = (s.strip() for s in item.partition("="))
        if not _NAME_RE.match(name) or name == "gt" or name in rates:
            why = ("is the ground truth" if name == "gt" else "is repeated" if name in rates
                   else "is not a method name the app accepts")
            raise PlanError(f"--rates: {name!r} {why}")
        try:
            rates[name] = float(value)
        except ValueError:
            raise PlanError(f"--rates: expected METHOD=RATE, got {item!r}") from None
        if not 0 < rates[name] < 1:
            raise PlanError(f"--rates: {name}={value} is outside (0, 1): give the fraction "
                            "of answers choosing the generated image, e.g. 0.33")
    if not rates:
        raise PlanError("--rates: no METHOD=RATE given")
    return rates


def rater_time(sizes: Sizes, seconds: float, practice: int = 5,
               attention_rate: float = 0.1) -> dict[str, float]:
    """``sitting_trials``, ``attention``, ``minutes_per_rater``, ``rater_hours``, counted as
    the consent page does (``practice + trials + round(attention_rate x trials)``, >= 1
    check, ``seconds`` each); the total adds each planned rater's unscored trials."""
    attention = max(1, round(attention_rate * sizes.trials)) if attention_rate > 0 else 0
    total = sizes.answers + sizes.raters * (practice + attention)
    sitting = practice + sizes.trials + attention
    return {"sitting_trials": sitting, "attention": attention,
            "minutes_per_rater": sitting * seconds / 60, "rater_hours": total * seconds / 3600}


_FLAGS = [  # flag, type, default, allowed range (or None), help
    ("--rates", str, None, None, "assumed fool rates, METHOD=RATE,... (replace the pilot's)"),
    ("--pilot", str, None, None, "a pilot's responses.csv (the app's export): rates and sds"),
    ("--rater-sd", float, None, (0, 6), f"rater effect sd, logit ({DEFAULT_RATER_SD} or pilot's)"),
    ("--image-sd", float, None, (0, 6), f"image effect sd, logit ({DEFAULT_IMAGE_SD} or pilot's)"),
    ("--raters", int, None, None, "raters (default: derived from the other sizes)"),
    ("--images", int, None, None, "test photos (default: derived, else 500)"),
    ("--trials-per-rater", int, None, None, "scored trials per rater (default: derived, else 50)"),
    ("--k", int, 5, None, "raters per (image, method) pair"),
    ("--target-halfwidth", float, None, None, "search the raters (and images) giving this worst"
     " 95%% half-width, points (--images: first guess)"),
    ("--seconds-per-trial", float, 6.0, (0, 3600), "seconds per trial, as the consent page"),
    ("--practice", int, 5, (0, 1000), "practice trials per rater"),
    ("--attention-rate", float, 0.1, (0, 1), "attention checks per scored trial"),
    ("--studies", int, 5, (1, 1000), "simulated studies per size"),
    ("--n-resamples", int, 2000, (100, 1e6), "bootstrap resamples"),
    ("--search-resamples", int, 500, (100, 1e6), "bootstrap resamples in the search"),
    ("--seed", int, 0, None, "seed of the simulations and the bootstraps")]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m analysis.vtt_plan", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, kind, default, _, text in _FLAGS:
        more = "" if default is None else " (default %(default)s)"
        p.add_argument(flag, type=kind, default=default, help=text + more)
    return p


def model_from_args(args: argparse.Namespace) -> tuple[Model, list[str]]:
    """The answer model from ``--rates``, ``--pilot`` and the spread flags, with notes."""
    if args.pilot is None and args.rates is None:
        raise PlanError("give --rates METHOD=RATE,... or --pilot responses.csv")
    rates, notes, model = parse_rates(args.rates) if args.rates else {}, [], None
    if args.pilot is not None:
        try:
            model, table = estimate_from_pilot(read_responses(args.pilot))
        except (OSError, ResponsesFormatError) as err:
            raise PlanError(f"--pilot: {err}") from None
        if set(rates) - set(model.rates):
            raise PlanError(f"--rates: unknown method(s) {sorted(set(rates) - set(model.rates))}"
                            f"; the pilot has {list(model.rates)}")
        notes.append(f"from --pilot ({int(table['answers'].sum())} counted answers): rates "
                     "as observed; sds fitted to the covariances of answers sharing a photo "
                     "and of answers sharing a rater (method of moments)")
    for flag, _, _, limits, _ in _FLAGS:
        v = getattr(args, flag[2:].replace("-", "_"))
        if limits and v is not None and not limits[0] <= v <= limits[1]:
            raise PlanError(f"{flag} must be in [{limits[0]:g}, {limits[1]:g}], got {v:g}")
    base = model or Model(rates)
    sds = [getattr(base, f) if getattr(args, f) is None else getattr(args, f)
           for f in ("rater_sd", "image_sd")]
    rates = {**base.rates, **rates}
    for m, r in rates.items():
        if not 0 < r < 1:
            raise PlanError(f"--pilot: {m} has rate {r:g}; give it with --rates {m}=RATE")
    return Model(rates, *sds), notes


def plan(args: argparse.Namespace) -> list[str]:
    """The report of ``python -m analysis.vtt_plan`` as lines (see :func:`_parser`)."""
    model, notes = model_from_args(args)
    sizes, more = resolve_sizes(len(model.rates), args.raters, args.images, args.k,
                                args.trials_per_rater)
    boot, target = args.n_resamples, args.target_halfwidth
    if target is not None:
        if args.raters is not None or not target > 0:
            raise PlanError("--target-halfwidth needs a positive value and searches the "
                            "raters: drop --raters (--images is the first guess)")
        boot = args.search_resamples
        sizes, table, trace = search(model, target, sizes.k, args.trials_per_rater or 50,
                                     sizes.images, args.studies, boot, args.seed)
        more = [f"--target-halfwidth {target:g}: searched " + ", ".join(
            f"{i} images/{r} raters -> {h:.2f}" for i, r, h in trace),
            f"needed: about {sizes.raters} raters and {sizes.images} images"]
    else:
        table = predict(model, sizes, args.studies, boot, args.seed)
    t = rater_time(sizes, args.seconds_per_trial, args.practice, args.attention_rate)
    return [f"model: logit P(generated chosen) = a_method + rater effect (sd "
            f"{model.rater_sd:.2f}) + image effect (sd {model.image_sd:.2f})", *notes, *more,
            f"study: {sizes.raters} raters x {sizes.trials} scored trials; {sizes.images} "
            f"images x {sizes.methods} methods x K {sizes.k} = {sizes.answers} answers "
            f"(simulated studies used up to {table.attrs['raters_used']} raters)",
            f"95% interval half-width in points, median of {args.studies} simulated studies "
            f"(vtt_scores, raters_images bootstrap, {boot} resamples; spread = max - min):",
            table.to_string(index=False, float_format=lambda x: f"{x:.2f}"),
            f"rater time: {t['sitting_trials']} trials per sitting ({args.practice} practice"
            f" + {sizes.trials} scored + {t['attention']} attention) x "
            f"{args.seconds_per_trial:g} s = {t['minutes_per_rater']:.1f} min per rater; "
            f"{t['rater_hours']:.1f} rater-hours in all"]


def main(argv: list[str] | None = None) -> None:
    """Print a study plan; a bad input exits with status 2 and a message naming its flag."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        print("\n".join(plan(args)))
    except PlanError as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
