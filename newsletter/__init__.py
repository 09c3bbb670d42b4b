"""newsletter: write snippets, compose issues, render them to email, check and send them."""

from __future__ import annotations

__version__ = "0.1.0"
