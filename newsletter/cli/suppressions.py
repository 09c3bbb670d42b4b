"""`newsletter suppressions`: SendGrid's suppression lists and ours, kept in step."""

from __future__ import annotations
