"""Settings: one frozen object from `tre.toml` + environment, with defaults that run on one machine.

The dataclass fields of `Settings` *are* the settings table: each carries its environment
variable, its help text and how its default is derived. `tre config show` and
`docs/settings.md` (checked by a test) are both generated from it.

Precedence: environment > settings file > default. The settings file is `$TRE_CONFIG`, else
`tre.toml` in `$TRE_HOME` when present. In the file, a table `[hub]` with key `port` sets the
setting `hub_port`. Relative paths in the file are relative to the file; in the environment,
to the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tre.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parent


def repo_root() -> Path | None:
    """The source checkout `tre` runs from, or None when installed as a plain package."""
    pyproject = _CHECKOUT / "pyproject.toml"
    if pyproject.is_file() and 'name = "tre"' in pyproject.read_text(encoding="utf-8"):
        return _CHECKOUT
    return None


def _default_home(values: dict) -> Path:
    root = repo_root()
    return root / "var" if root else Path.home() / ".local" / "share" / "tre"


def _beside_repo(name: str):
    def default(values: dict) -> Path:
        root = repo_root()
        return root / name if root else values["home"] / name

    return default


def _under_home(*parts: str):
    return lambda values: values["home"].joinpath(*parts)


def setting(*, env: str, help: str, default=None, shown: str | None = None):
    """A settings-table row.

    `default` is a value or a function of the settings resolved so far; a computed default
    says in `shown` what it is, for the docs.
    """
    if callable(default) and shown is None:
        raise TypeError(f"setting {env}: a computed default needs `shown`")
    return field(metadata={"env": env, "help": help, "default": default, "shown": shown})


@dataclass(frozen=True)
class Settings:
    # Order matters: a default may use any setting above it.
    home: Path = setting(
        env="TRE_HOME",
        default=_default_home,
        shown="`var/` in the source checkout, else `~/.local/share/tre`",
        help="State directory of this TRE installation: metadata store, central zone, keys, logs. Created mode 0700.",
    )
    db_url: str = setting(
        env="TRE_DB_URL",
        default=lambda v: f"sqlite:///{v['home'] / 'tre.sqlite'}",
        shown="`sqlite:///$TRE_HOME/tre.sqlite`",
        help="SQLAlchemy URL of the metadata store (users, projects, approvals, requests, audit). "
        "SQLite by default; a postgresql:// URL for a server.",
    )
    central_dir: Path = setting(
        env="TRE_CENTRAL_DIR",
        default=_under_home("central"),
        shown="`$TRE_HOME/central`",
        help="The central zone: identity vault, register store, rejects, key tables. Controller "
        "only; created mode 0700.",
    )
    deliveries_dir: Path = setting(
        env="TRE_DELIVERIES_DIR",
        default=_under_home("deliveries"),
        shown="`$TRE_HOME/deliveries`",
        help="Where register deliveries arrive (and where `tre demo` writes synthetic ones).",
    )
    projects_dir: Path = setting(
        env="TRE_PROJECTS_DIR",
        default=_beside_repo("projects"),
        shown="`projects/` in the source checkout, else `$TRE_HOME/projects`",
        help="Project workspaces, one folder per project (data/, work/, requests/, released/).",
    )
    approvals_dir: Path = setting(
        env="TRE_APPROVALS_DIR",
        default=_beside_repo("approvals"),
        shown="`approvals/` in the source checkout, else `$TRE_HOME/approvals`",
        help="Approval records, one TOML file per approval, reviewed like code.",
    )
    master_key_file: Path = setting(
        env="TRE_MASTER_KEY_FILE",
        default=_under_home("keys", "master.key"),
        shown="`$TRE_HOME/keys/master.key`",
        help="The master key that wraps the identity vault's data keys: a 0600 file, outside the central zone, "
        "created by the first ingest. Not used when the environment holds TRE_MASTER_KEY (32 bytes, base64) "
        "or `kms` is set.",
    )
    kms: str = setting(
        env="TRE_KMS",
        default="",
        help="An external key service instead of the master key file: `module:callable`, called with the "
        "settings, returning an object with `key_id`, `wrap(data, context)`, `unwrap(blob, context)` and, "
        "for `tre vault rotate-key`, `rotated()` (see docs/central-zone.md).",
    )
    backup_dir: Path = setting(
        env="TRE_BACKUP_DIR",
        default=_under_home("backups"),
        shown="`$TRE_HOME/backups`",
        help="Where `tre backup create` writes its encrypted archives (mode 0700). Point it at another disk or "
        "machine: a backup beside what it copies is lost with it.",
    )
    backup_keys_dir: Path = setting(
        env="TRE_BACKUP_KEYS_DIR",
        default=_under_home("keys", "backups"),
        shown="`$TRE_HOME/keys/backups`",
        help="Where `tre backup create` writes each archive's key, wrapped by the master key (0600 files, 0700 "
        "folder): never in the same place as the archives. Restoring needs the archive, its key file and the "
        "master key that was in force when it was made.",
    )
    ingest_workers: int = setting(
        env="TRE_INGEST_WORKERS",
        default=0,
        help="Processes for the per-identifier cryptography of an ingest (blind index, encryption); "
        "0: one per CPU core.",
    )
    exports_dir: Path = setting(
        env="TRE_EXPORTS_DIR",
        default=_under_home("exports"),
        shown="`$TRE_HOME/exports`",
        help="Release bundles, one zip per released output request (`<project>/REQ-<n>.zip`): the only path "
        "out of a project. Central side, never inside a project; created mode 0700.",
    )
    ledger_dir: Path = setting(
        env="TRE_LEDGER_DIR",
        default=_under_home("ledger"),
        shown="`$TRE_HOME/ledger`",
        help="The release ledger: per project, every released table's cells with the persons (pseudonyms) "
        "behind them, written at release; every new output is audited against it. Central side, never inside "
        "a project (the project's kernel reads a copy in released/.ledger/); created mode 0700.",
    )
    outputs_dir: Path = setting(
        env="TRE_OUTPUTS_DIR",
        default=_under_home("outputs"),
        shown="`$TRE_HOME/outputs`",
        help="Central copies of the outputs in requests (`<project>/REQ-<n>/<output>/`): at `tre request add` "
        "every file of a queued output is copied here, and everything after (checks, previews, review, "
        "release) reads this copy only. Central side, never inside a project; created mode 0700.",
    )
    output_file_limit: int = setting(
        env="TRE_OUTPUT_FILE_LIMIT",
        default=16 * 1024 * 1024,
        help="Largest file (bytes) an output may hold for release (tables, figures, text, notebooks); a larger "
        "one is refused when it is added to a request, before a byte of it is read.",
    )
    output_evidence_limit: int = setting(
        env="TRE_OUTPUT_EVIDENCE_LIMIT",
        default=512 * 1024 * 1024,
        help="Largest central-only file (bytes) of an output: its check evidence (`evidence.*`, which never "
        "leaves) and the kernel's reports. Larger ones are refused when the output is added to a request.",
    )
    user: str = setting(
        env="TRE_USER",
        default="",
        help="The TRE user the CLI acts as when `--as` is not given.",
    )
    cli_identity: str = setting(
        env="TRE_CLI_IDENTITY",
        default="os",
        help="`os`: the CLI acts as a TRE user (`--as`, `TRE_USER`) only if the OS account running it is bound to "
        "that user (`tre user bind-os`; under sudo, the account sudo authenticated); the first admin is bound to "
        "whoever creates them. `demo`: the name is taken as given (make demo, the test suite); every audit event "
        "then says so.",
    )
    os_account_prefix: str = setting(
        env="TRE_OS_ACCOUNT_PREFIX",
        default="tre",
        help="Prefix of the OS groups and accounts `tre project provision` creates (one group per project, "
        "one account per member and project); 1-5 lowercase letters. See docs/hub.md for the naming scheme.",
    )
    project_disk_quota: str = setting(
        env="TRE_PROJECT_DISK_QUOTA",
        default="20G",
        help="Disk space of each project's own filesystem (a sparse ext4 image, loop-mounted as root) that holds "
        "its work/, requests/ and its members' homes: a project that fills it gets 'No space left on device', "
        "the machine's disk stays free. A size such as 500M or 20G; 0: no volume (work/ on the projects "
        "folder's disk, unbounded). Raising it grows the volumes; lowering it does not shrink them.",
    )
    build_approval_days: int = setting(
        env="TRE_BUILD_APPROVAL_DAYS",
        default=7,
        help="Days a key custodian's approval of a § 4-5 build (one that decrypts ID numbers) stays valid unused: "
        "a build asked or approved longer ago is refused and asked again (`tre extract build`), so an old "
        "approval cannot be spent on a cohort the custodian no longer has in mind. The approval names the "
        "cohort's persons digest and is spent by the one decryption it allows.",
    )
    retention_warning_days: int = setting(
        env="TRE_RETENTION_WARNING_DAYS",
        default=90,
        help="Days before a project's linked data set reaches its § 4-11 storage limit that `tre retention run` "
        "warns the project (an audit event and the end date in its work/README.md); at the limit the run "
        "deletes data/, work/, the members' homes for the project, unreleased requests and the key table, and "
        "locks the project.",
    )
    hub_dir: Path = setting(
        env="TRE_HUB_DIR",
        default=_under_home("hub"),
        shown="`$TRE_HOME/hub`",
        help="The hub's state: jupyterhub.sqlite, cookie secret, proxy token, logs, researchers' homes.",
    )
    hub_ip: str = setting(
        env="TRE_HUB_IP",
        default="127.0.0.1",
        help="Address the hub's public proxy listens on. Put a TLS-terminating reverse proxy in front of it "
        "for access from other machines.",
    )
    hub_port: int = setting(env="TRE_HUB_PORT", default=8000, help="Port of the hub's public proxy.")
    hub_proxy_api_port: int = setting(
        env="TRE_HUB_PROXY_API_PORT",
        default=8001,
        help="Port of the proxy's REST API, on 127.0.0.1 (the hub configures routes through it).",
    )
    hub_api_port: int = setting(
        env="TRE_HUB_API_PORT",
        default=8081,
        help="Port of the hub's own API, which researchers' servers call. With isolation on it listens on "
        "the hub's address in `hub_netns_pool`, else on 127.0.0.1.",
    )
    hub_db_url: str = setting(
        env="TRE_HUB_DB_URL",
        default=lambda v: f"sqlite:///{v['hub_dir'] / 'jupyterhub.sqlite'}",
        shown="`sqlite:///$TRE_HUB_DIR/jupyterhub.sqlite`",
        help="JupyterHub's own database (sessions, tokens, servers); a postgresql:// URL on a cluster.",
    )
    hub_isolation: str = setting(
        env="TRE_HUB_ISOLATION",
        default="auto",
        help="`on`: each (researcher, project) server runs as its own OS account in its own mount and network "
        "namespace (needs root); `off`: every server runs as the hub's user, with a warning; `auto`: on when "
        "running as root. Also decides whether `tre project provision` creates OS accounts.",
    )
    hub_netns_pool: str = setting(
        env="TRE_HUB_NETNS_POOL",
        default="10.213.0.0/16",
        help="Private IPv4 range for the servers' network namespaces; each running hub takes a /22 of it.",
    )
    hub_two_factor: bool = setting(
        env="TRE_HUB_TWO_FACTOR",
        default=True,
        help="Require a TOTP code (set with `tre user totp`) at every hub login.",
    )
    hub_authenticator: str = setting(
        env="TRE_HUB_AUTHENTICATOR",
        default="native",
        help="`native`: passwords and TOTP set with `tre user password` / `tre user totp`; `oidc`: an "
        "institution's OpenID Connect login that must assert MFA (configure it in `hub_config_file`).",
    )
    hub_config_file: str = setting(
        env="TRE_HUB_CONFIG_FILE",
        default="",
        help="An extra jupyterhub_config.py loaded after the TRE's (OIDC endpoints and secrets, site settings).",
    )
    hub_enforce_interval: int = setting(
        env="TRE_HUB_ENFORCE_INTERVAL",
        default=60,
        help="Seconds between the hub's checks that every running server still has an active approval and "
        "an unlocked project; servers that do not are stopped.",
    )
    hub_server_pids_max: int = setting(
        env="TRE_HUB_SERVER_PIDS_MAX",
        default=1024,
        help="Processes and threads a researcher's server may have at once, kernels and everything they "
        "start included (cgroup pids.max); 0: no limit.",
    )
    hub_server_memory_max: str = setting(
        env="TRE_HUB_SERVER_MEMORY_MAX",
        default="8G",
        help="Memory a researcher's server may use, kernels and their children included (cgroup memory.max, "
        "or memory.limit_in_bytes on a cgroup v1 machine); past it the kernel's OOM killer ends the largest "
        "process of that server only. A size such as 512M or 8G; 0: no limit.",
    )
    hub_server_cpus: float = setting(
        env="TRE_HUB_SERVER_CPUS",
        default=2.0,
        help="CPU time a researcher's server may use, in CPUs (cgroup cpu.max, or cpu.cfs_quota_us on cgroup "
        "v1): 0.5 is half a core however many processes it runs; 0: no limit.",
    )
    hub_notebooks_dir: Path = setting(
        env="TRE_HUB_NOTEBOOKS_DIR",
        default=_beside_repo("notebooks"),
        shown="`notebooks/` in the source checkout, else `$TRE_HOME/notebooks`",
        help="Example notebooks copied into a project's work/ at its first server start.",
    )
    hub_proxy_command: Path = setting(
        env="TRE_HUB_PROXY_COMMAND",
        default=_beside_repo("node_modules/.bin/configurable-http-proxy"),
        shown="`node_modules/.bin/configurable-http-proxy` in the source checkout",
        help="The configurable-http-proxy executable (installed by `make node`).",
    )
    review_ip: str = setting(
        env="TRE_REVIEW_IP",
        default="127.0.0.1",
        help="Address the review page listens on (`tre review serve`; the hub's `tre-review` service too).",
    )
    review_port: int = setting(
        env="TRE_REVIEW_PORT",
        default=8010,
        help="Port of the review page. Under the hub it is reached at /services/tre-review/ through the proxy.",
    )
    time_zone: str = setting(
        env="TRE_TIME_ZONE",
        default="Europe/Oslo",
        help="Time zone (IANA name) of the times the review page and `tre audit log` show; stored times stay UTC.",
    )
    stats_dir: Path = setting(
        env="TRE_STATS_DIR",
        default=_under_home("stats"),
        shown="`$TRE_HOME/stats`",
        help="The § 4-6 statistics: the publication record (what every run published; central, 0600), the "
        "published files (`publication/`), the static site (`site/`) and the municipalities' § 3-3 feedback "
        "(`feedback/`, behind a login). Created mode 0700.",
    )
    stats_ip: str = setting(
        env="TRE_STATS_IP",
        default="127.0.0.1",
        help="Address the statistics site listens on (`tre stats serve`; the hub's `tre-stats` service too).",
    )
    stats_port: int = setting(
        env="TRE_STATS_PORT",
        default=8020,
        help="Port of the statistics site. Under the hub it is reached at /services/tre-stats/ through the proxy.",
    )
    stats_vega_dir: Path = setting(
        env="TRE_STATS_VEGA_DIR",
        default=_beside_repo("node_modules"),
        shown="`node_modules/` in the source checkout",
        help="Where `make node` installed vega, vega-lite and vega-embed; `tre stats site` copies their "
        "scripts into the site (no page loads anything from elsewhere).",
    )

    # Where each value came from ("default", "file", "env"); not itself a setting.
    sources: dict = field(default_factory=dict, compare=False, repr=False, metadata={"internal": True})

    @property
    def metadata_store_path(self) -> Path | None:
        """The SQLite file of the metadata store, or None for a server URL."""
        prefix = "sqlite:///"
        return Path(self.db_url[len(prefix) :]) if self.db_url.startswith(prefix) else None


def setting_fields() -> list[dataclasses.Field]:
    """The settings table: every public field of `Settings`, in order."""
    return [f for f in dataclasses.fields(Settings) if not f.metadata.get("internal")]


def load_settings(environ: dict | None = None) -> Settings:
    """Settings from the environment and the settings file, defaults for the rest."""
    environ = os.environ if environ is None else environ
    fields = setting_fields()
    by_env = {f.metadata["env"]: f for f in fields}

    from_env = {by_env[k].name: v for k, v in environ.items() if k in by_env and v != ""}
    config_path = _config_path(environ, from_env)
    from_file = _read_settings_file(config_path, {f.name for f in fields}) if config_path else {}

    values, sources = {}, {}
    for f in fields:
        if f.name in from_env:
            raw, source, base = from_env[f.name], "env", Path.cwd()
        elif f.name in from_file:
            raw, source, base = from_file[f.name], "file", config_path.parent
        else:
            default = f.metadata["default"]
            raw, source, base = (default(values) if callable(default) else default), "default", Path.cwd()
        values[f.name] = _convert(f, raw, base, source)
        sources[f.name] = source
    return Settings(**values, sources=sources)


def _config_path(environ, from_env) -> Path | None:
    if environ.get("TRE_CONFIG"):
        path = Path(environ["TRE_CONFIG"]).expanduser()
        if not path.is_file():
            raise ConfigError(f"TRE_CONFIG names {path}, which is not a file: create it or unset TRE_CONFIG")
        return path.resolve()
    home = Path(from_env["home"]).expanduser() if "home" in from_env else _default_home({})
    candidate = home / "tre.toml"
    return candidate.resolve() if candidate.is_file() else None


def _read_settings_file(path: Path, known: set[str]) -> dict:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read settings file {path}: {e.__class__.__name__}; check the file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"settings file {path} is not valid TOML ({e}); fix it") from None
    flat = {}

    def walk(table, prefix):
        for key, value in table.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{name}_")
            else:
                flat[name] = value

    walk(data, "")
    unknown = sorted(set(flat) - known)
    if unknown:
        raise ConfigError(
            f"settings file {path}: unknown setting(s) {', '.join(unknown)}; see `tre config show` for the known ones"
        )
    return flat


_TYPES = {"Path": Path, "str": str, "int": int, "bool": bool, "float": float}


def _convert(f: dataclasses.Field, raw, base: Path, source: str):
    kind = _TYPES[f.type]
    where = f"{f.metadata['env']}" if source == "env" else f"setting {f.name}"
    try:
        if kind is Path:
            path = Path(raw).expanduser()
            return path if path.is_absolute() else (base / path).resolve()
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return text in {"1", "true", "yes", "on"}
        if kind is int and isinstance(raw, bool):
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be {kind.__name__.lower()}, got {raw!r}") from None


def ensure_private_dir(path: Path, what: str) -> Path:
    """Create `path` (and parents) with mode 0700, or fail with a one-line error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o700)
    except OSError as e:
        raise ConfigError(
            f"cannot create {what} at {path} ({e.strerror}): set it to a directory you can write"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} at {path} is not writable: set it to a directory you can write")
    return path


def ensure_dirs(settings: Settings) -> None:
    """The directories every command may write to, created with the right modes."""
    ensure_private_dir(settings.home, "TRE_HOME")
    ensure_private_dir(settings.central_dir, "the central zone (TRE_CENTRAL_DIR)")


def settings_table_markdown() -> str:
    """The settings table as Markdown, for docs/settings.md."""
    rows = ["| setting | environment | default | what it is |", "|---|---|---|---|"]
    for f in setting_fields():
        shown = _describe_default(f)
        rows.append(f"| `{f.name}` | `{f.metadata['env']}` | {shown} | {f.metadata['help']} |")
    return "\n".join(rows) + "\n"


def _describe_default(f: dataclasses.Field) -> str:
    if f.metadata["shown"]:
        return f.metadata["shown"]
    default = f.metadata["default"]
    return f"`{default!r}`" if default not in ("", None) else "(none)"
