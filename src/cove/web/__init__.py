"""The web UI: server-rendered pages over the same services the API uses."""
