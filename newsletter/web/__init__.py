"""The subscriber-facing web app (Starlette, served by uvicorn)."""
