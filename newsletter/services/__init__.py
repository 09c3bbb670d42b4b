"""Services: the operations the entry points call (library, render, build, preview)."""
