"""gunicorn settings shared by scripts/serve.sh and scripts/vtt_load.py.

After a worker has imported the app, its objects (modules, SQLAlchemy's mappers and compiled
statements) are moved out of the garbage collector's reach (``gc.freeze``): a full
collection then scans only what requests create, and the worker pauses less under load.
"""

import gc


def post_worker_init(worker) -> None:  # noqa: ARG001 - gunicorn's hook signature
    gc.collect()
    gc.freeze()
