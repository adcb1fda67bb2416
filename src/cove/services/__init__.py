"""Business logic. Nothing here knows about HTTP."""
