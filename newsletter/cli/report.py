"""`newsletter report`: one send's statistics as a self-contained HTML page."""

from __future__ import annotations
