"""Add the zero-initialised global branch (``--cond-global true``) to a PixelCNN-stage
training checkpoint, so that ``pixcolor train pixelcnn --resume`` continues the run with it.

Usage: python scripts/add_global_branch.py runs/pixelcnn/ckpt_00005500.pt \\
           runs/pixelcnn_global/ckpt_00005500.pt
then resume in runs/pixelcnn_global with the same flags (and a larger --steps).
"""

import sys

from pixcolor.assembly import add_global_branch

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    new = add_global_branch(sys.argv[1], sys.argv[2])
    print(f"wrote {sys.argv[2]}: added {', '.join(new)}")
