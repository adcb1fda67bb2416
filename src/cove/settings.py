"""Configuration: every `COVE_*` environment variable is read here and nowhere else."""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The data folder used when neither ``--data`` nor ``COVE_DATA`` names one, and no config file does.
DEFAULT_DATA = Path("./cove-data")


def config_path() -> Path:
    """Where `cove serve` records its data folder: ``$COVE_CONFIG``, else ``$XDG_CONFIG_HOME/cove/config.toml``
    (``~/.config/cove/config.toml``). An operator may write it too: ``data = "/srv/cove-data"``."""
    if os.environ.get("COVE_CONFIG"):
        return Path(os.environ["COVE_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cove" / "config.toml"


def configured_data() -> Path | None:
    """The data folder the config file names, or None (no file, or one without ``data``)."""
    try:
        with open(config_path(), "rb") as fh:
            value = tomllib.load(fh).get("data")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return Path(value).expanduser() if isinstance(value, str) and value else None


def record_data(data: Path) -> Path:
    """Record `data` (made absolute) in the config file, so admin commands run anywhere find this hub."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"# Written by `cove serve` (or `cove init`): the data folder of the hub admin commands use.\n"
                   f"data = {json.dumps(str(data.resolve()))}\n")
    tmp.replace(path)
    return path


def _default_data() -> Path:
    return configured_data() or DEFAULT_DATA


class Settings(BaseSettings):
    """Cove settings (env prefix ``COVE_``)."""

    model_config = SettingsConfigDict(env_prefix="COVE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    #: Data folder. Resolution, for `cove serve` and every admin command alike: ``--data``, then ``COVE_DATA``,
    #: then the config file (`config_path`, recorded by `cove serve`), then ``./cove-data``.
    data: Path = Field(default_factory=_default_data)
    #: Public URL clients use (HF_ENDPOINT); defaults to http://host:port.
    endpoint: str | None = None
    #: SQLAlchemy URL; defaults to SQLite in the data folder.
    database_url: str | None = None
    #: A git `<ref>.lock` older than this many seconds is stale (left by a crash) and is cleared; one that Cove
    #: wrote from a process of this host that is gone is cleared at once.
    git_stale_lock_s: float = 30.0
    #: Seconds between git maintenance passes over the repos (`git gc`: refs packed, objects repacked into one
    #: pack, unreachable ones pruned past `git_prune_grace_s`), fleet-wide: one process at a time holds the job (a
    #: lease row); never while a commit or push holds the repo. 0: no scheduled passes (`cove git maintain`).
    git_maintenance_interval: float = 3600
    #: A repo is maintained once it holds about this many loose objects (estimated as `git gc --auto` does) or
    #: more than `git_max_packs` packs; 0: any loose object (an exact count per repo: small hubs, tests).
    git_gc_loose_objects: int = 1000
    git_max_packs: int = 16
    #: Unreachable git objects younger than this many seconds survive maintenance (a commit in progress writes
    #: its objects before its branch moves).
    git_prune_grace_s: float = 3600
    #: After maintaining a repo the pass rests this many times as long as the repo took (it yields to requests).
    git_maintenance_duty: float = 1.0
    #: Repository handles (open pack files, indexes) each thread keeps, least recently used closed first.
    git_open_repos: int = 64
    #: Git pack files the whole process keeps open (libgit2 closes the least recently used past it): with
    #: `git_open_repos` per thread, what bounds the file descriptors git reads hold.
    git_open_pack_files: int = 256
    #: Longest wait, in seconds, at start-up for the schema migration lock another process holds. Past it, a
    #: process whose schema is already current starts anyway; one that needs the migration exits with an error.
    startup_lock_timeout_s: float = 60.0
    #: PostgreSQL connections each process keeps open (SQLAlchemy pool_size), and how many more it may open
    #: under load (max_overflow); a request waits at most db_pool_timeout seconds for one. Size them so that
    #: processes x (size + overflow) stays under PostgreSQL's max_connections (100 by default).
    db_pool_size: int = 5
    db_max_overflow: int = 10
    db_pool_timeout: float = 30.0
    #: The database URL is a PgBouncer in transaction mode: no client-side pool (NullPool: PgBouncer pools) and
    #: no server-side prepared statements (psycopg prepare_threshold=None).
    db_pgbouncer: bool = False
    #: Blob storage: "local" or "s3".
    blob_backend: str = "local"
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_prefix: str = ""
    #: S3 endpoint that clients reach, for presigned download URLs (defaults to s3_endpoint_url).
    s3_public_endpoint_url: str | None = None
    #: With S3, answer `/resolve` of an LFS file with a 302 to a presigned URL instead of proxying bytes.
    s3_redirect: bool = True
    #: Signing secret for URLs and sessions; generated and kept in the data folder when unset.
    secret: str | None = None
    #: Allow anyone to read public repos without a token.
    anonymous_read: bool = True
    #: Let any signed-in user create organizations (they become its admin, and its admins manage its members
    #: in the web UI), as on the Hub. False: only server admins (and `cove org add`).
    users_create_orgs: bool = True
    #: Largest LFS object an upload may announce, in bytes (the Hub's limit: 50 GB per file).
    max_lfs_file_size: int = 50 * 10**9
    #: Largest regular (inline) file in a commit, in bytes.
    max_inline_file: int = 10 * 1024 * 1024
    #: Largest commit request body (NDJSON), in bytes: it is spooled to a temp file as it arrives, and read one
    #: line at a time (a line may hold one inline file at `max_inline_file`, base64-encoded).
    max_commit_body: int = 1 << 30
    #: Most operations (files written or deleted) in one commit.
    max_commit_operations: int = 100_000
    #: Longest commit summary (the title; a PR's title is cut to 300) and description, in characters.
    max_commit_summary: int = 1000
    max_commit_description: int = 65536
    workers: int = 1
    #: Send blob files with `sendfile` (zero-copy: uvicorn plus `cove.zerocopy`'s ASGI pathsend/zerocopy);
    #: off: Python reads each file and writes it to the socket.
    zerocopy: bool = True
    #: Behind nginx: a GET of a local blob file answers with `X-Accel-Redirect: <this prefix>/<path under the
    #: blobs folder>` and no body, and nginx sends the bytes from an `internal` location aliased to the blobs
    #: folder (docs/scale-out.md has the configuration). Unset: Cove sends them.
    accel_redirect: str | None = None
    #: Answer `/resolve` of a file the scanner found unsafe (pickle imports outside picklescan's allow-list,
    #: a malformed safetensors/GGUF header) with 403; a file not scanned yet is scanned before it is served.
    block_unsafe_downloads: bool = False
    #: Seconds between the background scanner's looks for files not scanned yet; 0: no scanner (files
    #: stay `unscanned`).
    scan_interval: float = 2.0
    #: Seconds between flushes of a process's download counts (kept in memory, added to the database with
    #: `n = n + delta`); also flushed at a graceful shutdown. A crash loses at most this many seconds of counts.
    download_flush_interval: float = 5.0
    #: A pickle-based file (other than a plain pickle under 64 KiB) is scanned by a child process limited to
    #: this many bytes of address space and `scan_cpu_seconds` of CPU time (picklescan holds ~100 bytes per
    #: byte of pickle, and inflates zips); a file that needs more is reported unsafe.
    scan_max_memory: int = 2 << 30
    scan_cpu_seconds: int = 300
    #: Failed password sign-ins per account within `auth_window` before the account's sign-in answers 429.
    auth_account_failures: int = 5
    #: Failed sign-ins and invalid tokens per client IP within `auth_window` before that client gets 429
    #: (the client IP is uvicorn's: `X-Forwarded-For` is honoured from `FORWARDED_ALLOW_IPS`, default 127.0.0.1).
    auth_client_failures: int = 100
    #: Seconds over which failed attempts are counted.
    auth_window: int = 900
    #: Seconds of the first throttle period; each further one doubles, up to `auth_max_lockout`, and the
    #: doubling starts over after a quiet `auth_max_lockout`. A success clears the account's counter.
    auth_lockout: int = 60
    auth_max_lockout: int = 900
    #: Lifetime (seconds) of the signed LFS download URLs of the batch API; each request re-checks access.
    lfs_download_ttl: int = 3600
    #: Lifetime (seconds) of CAS access tokens; hf_xet refreshes them through the token route.
    xet_token_ttl: int = 900
    #: Upload temp files (and multipart parts) untouched for this many seconds are removed; more than the
    #: 24 h life of an upload URL, so a part waiting for the rest of its upload is kept. At start-up, a server
    #: that is the only one using the data folder removes every temp file (what a killed server left).
    tmp_max_age: float = 25 * 3600
    #: Seconds between two sweeps of stale temp files while serving.
    tmp_sweep_interval: float = 3600
    #: Access log, one line per request on stderr: "text", "json" or "off". Each line names the route template
    #: (`/lfs/objects/{token}`), never the raw path or the query string, which may carry signed URLs' secrets.
    access_log: str = "text"
    #: Seconds between the webhook worker's looks for due deliveries (one worker per `cove serve` process);
    #: 0: none (events are still queued, and delivered once a process with a worker runs).
    webhook_poll_interval: float = 1.0
    #: Seconds one webhook POST may take (connect and answer).
    webhook_timeout: float = 10.0
    #: Tries per event before it is given up (`failed` in the delivery log).
    webhook_max_attempts: int = 6
    #: Seconds before the first retry; each further one waits twice as long, up to `webhook_retry_max`.
    webhook_retry_base: float = 10.0
    webhook_retry_max: float = 3600.0
    #: Days finished deliveries are kept in the log.
    webhook_log_days: int = 14
    #: Refuse to deliver to loopback, private, link-local and reserved addresses (checked when delivering).
    #: Off by default: a self-hosted hub's receivers (CI, chat bots) usually live on its own network.
    webhook_block_private: bool = False
    #: Build and run the apps of Spaces (gradio, streamlit, static); off: Spaces are stored only.
    spaces_run: bool = True
    #: Where Space environments, working copies and the shared installer cache live. It must be outside the data
    #: folder, which the apps' uids may not enter; default: a sibling of the data folder, ``<data>-spaces``.
    spaces_root: Path | None = None
    #: The installer's (uv's) wheel cache, shared by every build; default ``<spaces root>/cache``. Spaces roots
    #: may share one (uv locks it), so a new hub or a test run starts warm.
    spaces_cache: Path | None = None
    #: Seconds an environment no Space uses is kept before it is removed (rebuilt from the cache when needed);
    #: 0: kept forever.
    spaces_env_ttl: int = 7 * 86400
    #: Most bytes of a Space's build or run log; past it the log keeps its newest quarter.
    spaces_log_bytes: int = 4 << 20
    #: Most Spaces running at once; past it the least recently visited one sleeps (0: no cap).
    spaces_max_running: int = 8
    #: Seconds without a visit before a Space sleeps (a Space's own `set_space_sleep_time` wins); 0: never.
    spaces_sleep_after: int = 48 * 3600
    #: Each app runs as uid (and gid) ``spaces_uid_base + repo id``; builds run as ``spaces_uid_base``.
    spaces_uid_base: int = 200_000
    #: Per app process: address-space limit in bytes, most processes/threads of its uid, CPU seconds (0: none),
    #: and its nice value.
    spaces_memory: int = 8 << 30
    spaces_nproc: int = 512
    spaces_cpu_seconds: int = 0
    spaces_nice: int = 5
    #: "isolated": each app in a network namespace of its own (only Cove reaches it, and it reaches only Cove);
    #: "host": apps share this machine's network (any app can connect to another's port).
    spaces_network: str = "isolated"
    #: Package index for Space builds (uv): `index_url` replaces PyPI, `extra_index_urls` (space-separated)
    #: and `find_links` (space-separated) add to it. Unset: pip's own config on this machine
    #: (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``, ``PIP_FIND_LINKS``, pip.conf) is passed on.
    spaces_index_url: str | None = None
    spaces_extra_index_urls: str | None = None
    spaces_find_links: str | None = None
    #: A constraints file (pip's format) applied to every Space build, e.g. ``torch==2.13.0+cpu`` to keep a
    #: CUDA torch out; unset: none.
    spaces_constraints: Path | None = None
    #: Python for Space environments when the README's ``python_version`` names none on this machine; it must
    #: be readable by the apps' uids (not under /root). Default: /usr/bin/python3.
    spaces_python: str | None = None
    #: Seconds a build may take; seconds an app may take to answer its first HTTP request.
    spaces_build_timeout: int = 900
    spaces_start_timeout: int = 300
    #: Allow ``packages.txt`` (Debian packages installed system-wide with apt-get, as root): off by default.
    spaces_allow_packages: bool = False
    #: Seconds between the supervisor's looks for pushes to Spaces' main branch.
    spaces_poll_interval: float = 1.0
    #: Serve each Space's app on an origin of its own, ``<ns>-<name>.<spaces_domain>`` (as the Hub's
    #: ``*.hf.space``; ``spaces.localhost`` works in a browser on this machine, else wildcard DNS to Cove, and a
    #: port may follow, ``spaces.example.com:8443``): private Spaces then work fully in a browser. Unset: apps are
    #: served under ``/spaces/<ns>/<name>/app/`` on Cove's own origin, sandboxed (a private one's first page only).
    spaces_domain: str | None = None
    #: Answer inference requests (`/models/{repo}`, `/v1/...`); needs the `inference` extra (torch, transformers).
    inference_enabled: bool = True
    #: Namespaces (comma-separated) whose models may be run; unset: every namespace.
    inference_namespaces: str | None = None
    #: Largest inference request body, in bytes (413 past it).
    inference_max_input: int = 1 << 20
    #: Memory the loaded models may take together, in bytes (each worker's resident size); past it the least
    #: recently used idle model is unloaded.
    inference_memory: int = 4 << 30
    #: Seconds without a request before a model's worker is stopped.
    inference_idle_unload: float = 900.0
    #: Dynamic batching: most requests run as one padded batch. A batch starts as soon as the worker is free
    #: with all that queued meanwhile; `max_wait` seconds more (default none) would hold it for later arrivals.
    inference_max_batch: int = 32
    inference_max_wait: float = 0.0
    #: Requests waiting per model; past it the answer is 429.
    inference_max_queue: int = 256
    #: Requests one caller (token, or client IP when anonymous) may have in flight at once; past it, 429.
    inference_max_per_user: int = 64
    #: Torch threads per model worker.
    inference_threads: int = 1
    #: Seconds a request waits for its model to load before it is answered 503 with `estimated_time`.
    inference_load_timeout: float = 300.0
    #: Most tokens one generation request may produce.
    inference_max_new_tokens: int = 1024
    #: Pull-through mirror (docs/mirror.md): the HF-compatible hub a read of a repo Cove does not hold is fetched
    #: from (huggingface.co, another Cove); unset: no mirroring.
    mirror_upstream: str | None = None
    #: Token sent to the upstream (for gated repos the operator accepted); used server-side only, never to clients.
    mirror_token: str | None = None
    #: Which repos may be mirrored on a miss: comma-separated fnmatch patterns on ``ns/name`` (models),
    #: ``datasets/ns/name``, ``spaces/ns/name``; `cove mirror add` patterns are allowed too.
    mirror_allow: str = "*"
    #: Seconds a branch head is trusted before it is checked against the upstream again (tags and shas: never).
    mirror_ttl: float = 300.0
    #: Seconds the upstream is not tried again after it could not be reached (the circuit breaker).
    mirror_retry_after: float = 30.0
    #: Seconds to wait for a connection to the upstream.
    mirror_connect_timeout: float = 3.0
    #: Lock slots of the mirror (a thread lock and a file under ``<data>/mirror-locks`` each): one fetch of a name
    #: (a repo, its refs, an LFS object) at a time, names hashed into this fixed set. The same in every process.
    mirror_lock_slots: int = 1024
    #: Seconds the first discussions read of a new mirror waits for their first copy from the upstream (made in
    #: the background) before it answers with what is stored so far.
    mirror_discussions_wait: float = 3.0
    #: Seconds between syncs of the repos `cove mirror add` patterns name (0: no schedule).
    mirror_sync_interval: float = 600.0
    #: Seconds a scheduled sync pass holds the fleet's lease without renewing it (the pass renews it as it runs):
    #: one process of a fleet syncs at a time, and one that died mid-pass frees the schedule after this.
    mirror_sync_lease_ttl: float = 120.0
    #: How a mirrored file's bytes are fetched from the upstream: ``splice`` (a plain-HTTP URL moved socket -> pipe
    #: -> temp file by ``os.splice``, Linux; anything else as ``auto`` without it), ``curl`` (a curl subprocess
    #: writes them to the temp file; this process only hashes), ``httpx`` (received in Python), ``auto``: splice
    #: for plain HTTP, else curl when on PATH, else httpx.
    mirror_fetcher: str = "auto"
    #: After a first read of a file the upstream serves over Xet (its HEAD names an X-Xet-Hash), chunk the stored
    #: bytes into this Cove's own Xet CAS in the background, so Xet clients then read it over Xet (same hash).
    mirror_xet: bool = True

    @cached_property
    def public_endpoint(self) -> str:
        if self.endpoint:
            return self.endpoint.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @cached_property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data / 'cove.db').resolve()}"

    def is_hub(self) -> bool:
        """Whether the data folder holds a hub already (its SQLite database, or its repos with another database)."""
        if self.database_url:
            return (self.data / "repos").is_dir()
        return (self.data / "cove.db").is_file()

    @property
    def repos_dir(self) -> Path:
        return self.data / "repos"

    @property
    def blobs_dir(self) -> Path:
        return self.data / "blobs"

    @property
    def spaces_dir(self) -> Path:
        """`spaces_root`, else ``<data>-spaces`` beside the data folder (absolute)."""
        if self.spaces_root:
            return Path(self.spaces_root).resolve()
        data = self.data.resolve()
        return data.with_name(data.name + "-spaces")

    @cached_property
    def signing_secret(self) -> str:
        if self.secret:
            return self.secret
        path = self.data / "secret"
        if not path.exists():  # written aside, then linked: processes starting together all read the first one
            self.data.mkdir(parents=True, exist_ok=True)
            tmp = self.data / f".secret-{os.getpid()}-{secrets.token_hex(4)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return path.read_text().strip()
