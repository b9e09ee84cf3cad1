"""scripts/vtt_load.py at a small size: raters through gunicorn, then the integrity check."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_load_script_small_run_passes_its_integrity_check():
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "vtt_load.py"), "--raters", "6", "--pace", "0.3",
         "--duration", "12", "--ramp", "1", "--images", "30", "--k", "2", "--trials", "8",
         "--workers", "2", "--threads", "4"],
        capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "integrity: ok" in out, out
    rows = {line.split()[1]: line.split() for line in out.splitlines()
            if line.startswith(("POST next", "GET images", "POST answer"))}
    # many trials, no errors; /next only for each rater's first trial (later ones come
    # with the answers, as on the page)
    assert int(rows["answer"][2]) > 20 and rows["answer"][-1] == "0", out
    assert int(rows["next"][2]) == 6 and rows["next"][-1] == "0", out
    assert rows["images"][2] == rows["answer"][2] and rows["images"][-1] == "0", out
