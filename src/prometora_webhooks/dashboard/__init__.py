"""The store owner's dashboard (Store Settings → Webhooks): server-rendered pages, no build step.

``router`` serves the pages under ``/dashboard``; ``STATIC_DIR`` holds the CSS and the small
script, served under ``/dashboard/static``.
"""

from __future__ import annotations

from .routes import router
from .web import STATIC_DIR, STATIC_PREFIX

__all__ = ["STATIC_DIR", "STATIC_PREFIX", "router"]
