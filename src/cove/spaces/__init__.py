"""Spaces that run: a push to a Space's ``main`` builds its environment and starts its app, and Cove serves it.

- `config`: what a Space asks for (README front matter, ``requirements.txt``), or why it can't run.
- `runner`: the interface a way of running apps implements; `local` is the one there is (a sandboxed process
  per app on this machine; a container or Kubernetes runner would implement the same).
- `build`: the per-Space Python environment, built by ``uv`` and reused for unchanged requirements.
- `manager`: the supervisor, started with `cove serve` off the request path: deploys, restarts, sleeps.
- `proxy`: Cove's reverse proxy to a running app (HTTP, streaming, server-sent events, WebSockets).
- `secrets`: Fernet encryption of Space secrets at rest.
"""
