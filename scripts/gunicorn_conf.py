"""gunicorn settings shared by scripts/serve.sh and scripts/vtt_load.py.

After a worker has imported the app:

* its database pool is filled (one connection per thread, each having touched every table),
  so that the first raters do not pay for opening PostgreSQL connections and warming new
  server processes while the load rises;
* its objects (modules, SQLAlchemy's mappers and compiled statements) are moved out of the
  garbage collector's reach (``gc.freeze``): a full collection then scans only what
  requests create, and the worker pauses less under load.
"""

import gc


def post_worker_init(worker) -> None:
    app = worker.wsgi  # the Flask app (gunicorn loaded "vtt_app:create_app()")
    engine = app.extensions.get("vtt_engine") if hasattr(app, "extensions") else None
    if engine is not None and engine.dialect.name == "postgresql":
        from sqlalchemy import text

        from vtt_app.models import Base

        conns = [engine.connect() for _ in range(app.config.get("DB_POOL_SIZE", 10))]
        for conn in conns:
            for table in Base.metadata.sorted_tables:
                conn.execute(text(f"SELECT 1 FROM {table.name} LIMIT 0"))
            conn.rollback()
        for conn in conns:
            conn.close()
    gc.collect()
    gc.freeze()
