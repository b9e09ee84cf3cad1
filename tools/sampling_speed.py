"""Sampling speed: naive vs cached PixelCNN sampling, and end-to-end colorize time.

The paper samples the 28x28 chroma image pixel by pixel (Sec. 3.1) and notes that "various
additional speedup tricks" exist (Ramachandran et al. 2017). This script measures, on the
current device and with random weights (speed does not depend on them):

* **naive** sampling (one full forward pass per drawn value, 2 x h x w passes): a fixed
  number of full forward steps is timed and extrapolated to 2 x h x w steps;
* **cached** sampling (:func:`pixcolor.sampling.sample_cached`): full runs; where that would
  take too long (batch 64 on a CPU, or ``--rows``) a fixed number of rows is timed and
  extrapolated to all h rows (every row costs the same);
* **end to end**: seconds for ``model.colorize`` of one 256x256 photo with 3 samples.

Usage::

    python -m tools.sampling_speed [--presets paper,small] [--batches 1,16,64] [--device cuda]
    python -m tools.sampling_speed --quick      # smoke test: small sizes, seconds
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from pixcolor import PixColor
from pixcolor.config import get_preset
from pixcolor.models.pixelcnn import PixelCNN
from pixcolor.sampling import sample_cached, sample_naive, sample_noise


@dataclass
class SpeedRow:
    """One (preset, batch) measurement; times are for one full sampling run of the batch."""

    preset: str
    batch: int
    naive_s: float  # extrapolated from naive_steps_timed full forward steps
    naive_steps_timed: int
    cached_s: float
    cached_rows_timed: int  # == h for a full run
    rows: int  # h of the low-resolution image

    @property
    def naive_sps(self) -> float:
        return self.batch / self.naive_s

    @property
    def cached_sps(self) -> float:
        return self.batch / self.cached_s

    @property
    def ratio(self) -> float:
        return self.naive_s / self.cached_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


@torch.no_grad()
def time_naive(net: PixelCNN, cond: torch.Tensor, steps: int) -> float:
    """Seconds for a whole naive run, from ``steps`` timed full forward steps.

    A naive run is 2 x h x w forward passes of the whole network (plus the draws, whose
    cost is negligible next to a forward pass); one warm-up step is not timed.
    """
    b, _, h, w = cond.shape
    x = torch.zeros(b, 2, h, w, dtype=cond.dtype, device=cond.device)
    net.forward_internal(x, cond)
    per_step = _timed(lambda: [net.forward_internal(x, cond) for _ in range(steps)],
                      cond.device) / steps
    return per_step * 2 * h * w


@torch.no_grad()
def time_cached(net: PixelCNN, cond: torch.Tensor, noise: torch.Tensor, rows: int | None
                ) -> tuple[float, int]:
    """Seconds for a whole cached run: full, or ``rows`` rows extrapolated to all h rows.

    Returns:
        (seconds, rows actually timed).
    """
    h = cond.shape[2]
    k = h if rows is None else max(1, min(rows, h))
    c, n = cond[:, :, :k].contiguous(), noise[:, :, :k].contiguous()
    sample_cached(net, c[:, :, :1], n[:, :, :1])  # warm-up (one row)
    return _timed(lambda: sample_cached(net, c, n), cond.device) * h / k, k


def measure(preset: str, batches: list[int], device: torch.device, naive_steps: int,
            cached_rows: int | None, seed: int = 0) -> list[SpeedRow]:
    """Naive and cached timings of ``preset``'s PixelCNN at each batch size."""
    cfg = get_preset(preset).model
    torch.manual_seed(seed)
    net = PixelCNN(cfg, cond_channels=cfg.adapt_channels).to(device).eval()
    h = w = cfg.lowres_short_side
    out = []
    g = torch.Generator().manual_seed(seed)
    for b in batches:
        cond = torch.randn(b, cfg.adapt_channels, h, w, generator=g).to(device)
        noise = sample_noise(list(range(b)), 1, seed, (h, w), device=device)
        naive = time_naive(net, cond, naive_steps)
        rows = cached_rows
        if rows is None and device.type == "cpu" and b >= 64:
            rows = 4
        cached, k = time_cached(net, cond, noise, rows)
        out.append(SpeedRow(preset, b, naive, naive_steps, cached, k, h))
    return out


def end_to_end(preset: str, device: torch.device, samples: int = 3, size: int = 256) -> float:
    """Seconds for ``colorize`` of one ``size`` x ``size`` photo with ``samples`` samples."""
    from skimage import data

    from bench.splits import preprocess

    photo = preprocess(data.astronaut(), size)
    torch.manual_seed(0)
    model = PixColor.from_preset(preset).to(device)
    return _timed(lambda: model.colorize([photo], num_samples=samples, seed=1), device)


def check_equal(preset: str = "tiny", device: torch.device | None = None) -> bool:
    """Both samplers give the same samples on a tiny network (a sanity check)."""
    cfg = get_preset(preset).model
    torch.manual_seed(0)
    net = PixelCNN(cfg, cond_channels=cfg.adapt_channels).to(device or "cpu").eval()
    h = cfg.lowres_short_side
    cond = torch.randn(2, cfg.adapt_channels, h, h, device=net.head2.weight.device)
    noise = sample_noise([1, 2], 1, 0, (h, h), device=cond.device)
    return bool(torch.equal(sample_naive(net, cond, noise)[0], sample_cached(net, cond, noise)[0]))


def format_rows(rows: list[SpeedRow]) -> str:
    """The naive-vs-cached table, with how each number was obtained."""
    head = (f"{'preset':<7}{'batch':>6}{'naive s':>11}{'naive smp/s':>13}"
            f"{'cached s':>10}{'cached smp/s':>14}{'ratio':>9}  how")
    lines = [head]
    for r in rows:
        how = (f"naive: {r.naive_steps_timed} of {2 * r.rows * r.rows} steps timed, "
               "extrapolated; cached: " + ("full run" if r.cached_rows_timed == r.rows else
                                           f"{r.cached_rows_timed} of {r.rows} rows timed, "
                                           "extrapolated"))
        lines.append(f"{r.preset:<7}{r.batch:>6}{r.naive_s:>11.1f}{r.naive_sps:>13.4f}"
                     f"{r.cached_s:>10.2f}{r.cached_sps:>14.3f}{r.ratio:>8.0f}x  {how}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line; prints the tables (and writes ``--json``)."""
    p = argparse.ArgumentParser(prog="python -m tools.sampling_speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="paper,small", help="comma-separated presets")
    p.add_argument("--batches", default="1,16,64", help="comma-separated batch sizes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--naive-steps", type=int, default=10, help="naive forward steps timed")
    p.add_argument("--rows", type=int, default=None,
                   help="cached: time this many rows and extrapolate (default: full runs, "
                        "4 rows at batch >= 64 on a CPU)")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end timings")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: batches 1,4, 2 naive steps, 2 cached rows")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the sampler's small per-pixel products "
                        "run up to 5x faster than with 2 threads on a busy 2-core machine; "
                        "0: torch's default)")
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.threads > 0 and device.type == "cpu":
        torch.set_num_threads(args.threads)
    presets = [s for s in args.presets.split(",") if s]
    batches = [int(b) for b in args.batches.split(",") if b]
    steps, rows = args.naive_steps, args.rows
    if args.quick:
        batches, steps, rows = [1, 4], 2, 2
    print(f"device: {device} ({torch.get_num_threads()} CPU threads), torch {torch.__version__}")
    print(f"samplers agree on a tiny network: {check_equal(device=device)}")
    results = []
    for preset in presets:
        results += measure(preset, batches, device, steps, rows)
    print("\nPixelCNN sampling of one batch of 28x28 chroma images (random weights); "
          "smp/s = samples per second, ratio = naive time / cached time")
    print(format_rows(results))
    e2e = {}
    if not args.no_e2e:
        print("\nEnd to end: model.colorize of one 256x256 photo, 3 samples (random weights)")
        for preset in presets:
            e2e[preset] = _e2e_safe(preset, device)
            print(f"  {preset:<7}{e2e[preset]:8.2f} s")
    if args.json:
        doc = {"device": str(device), "rows": [asdict(r) | {"ratio": r.ratio} for r in results],
               "end_to_end_s": e2e, "quick": args.quick}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return 0


def _e2e_safe(preset: str, device: torch.device) -> float:
    try:
        return end_to_end(preset, device)
    except RuntimeError as exc:  # e.g. out of memory
        print(f"  {preset}: failed ({exc})")
        return float(np.nan)


if __name__ == "__main__":
    raise SystemExit(main())
