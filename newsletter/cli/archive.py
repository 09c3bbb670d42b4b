"""`newsletter archive`: the public archive of sent issues, as a static site with a feed."""

from __future__ import annotations
