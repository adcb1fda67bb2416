"""The ASGI entry point for `uvicorn cove.asgi:app` (settings from `COVE_*`)."""

from cove.app import create_app

app = create_app()
