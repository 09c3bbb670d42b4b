"""The pure domain: content models, rendering helpers and checks. No files, no network."""
