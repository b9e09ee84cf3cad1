"""``python -m pixcolor`` (and ``torchrun -m pixcolor``) runs the command line."""

from pixcolor.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
