"""Lets a plain ``flask run`` from the project root find the VTT app (``vtt_app``).

Flask looks for ``app.py`` and calls its ``create_app`` factory; the app itself lives in
``vtt_app/`` (see ``flask --app vtt_app --help``).
"""

from vtt_app import create_app

__all__ = ["create_app"]
