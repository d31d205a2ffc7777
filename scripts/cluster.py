"""Kefu's local cluster: nginx in front of Rasa replicas and action servers (make run-cluster).

    python scripts/cluster.py up      # start everything, wait until each part is ready, return
    python scripts/cluster.py status  # each process: running or not, answering or not
    python scripts/cluster.py down    # SIGTERM everything, SIGKILL what is left after a timeout

The topology is ``deploy/cluster.yml``; ``KEFU_CLUSTER_<SECTION>_<KEY>`` environment variables
override one value for one run (``KEFU_CLUSTER_RASA_REPLICAS=4``); an unknown name is an error,
so a typo never silently runs the default. ``up``:

1. checks that PostgreSQL, Redis and RabbitMQ answer, that every port is free, that memory
   allows the replicas (``rasa.memory_gib`` each) and that ``deploy/endpoints.production.yml``
   agrees with the config (lock store db, broker queue and port);
2. installs nginx (``apt-get install -y nginx``) when it is missing and we are root, else stops
   with how to install it; the system nginx service is neither started nor touched;
3. creates the tracker and commerce databases when missing, migrates the commerce database and
   loads the demo seed into it when empty (``python -m commerce upgrade`` / ``seed --if-empty``),
   and makes the demo agent account (its token in ``<run_dir>/agent-token``);
4. renders ``deploy/nginx.conf.template`` into ``<run_dir>/nginx.conf``, checks it (``nginx -t``)
   and starts nginx on it as a foreground process of its own (pid, temp files under run_dir);
5. starts the action servers (``python -m actions --port P``) and the Rasa replicas (``rasa run``
   with ``deploy/endpoints.production.yml``, ``deploy/credentials.cluster.yml``, the same model
   file), all with the ``KEFU_*`` environment that endpoints file documents, and waits until each
   action server answers ``/health``, each replica ``/webhooks/health/ready`` and the balancer
   forwards to them;
6. then starts one proactive-notice worker (``python -m commerce notify``, commerce/notify.py)
   with ``KEFU_NOTIFY_LIVE_URL`` listing every replica's own loopback route
   (``http://127.0.0.1:<port>/webhooks/live/notify``), not nginx's: only the replica holding a
   tab's socket delivers to it, the others answer 404, and nginx would ask one at random. One
   worker, not one per replica: the outbox's unique dedupe keys make a second one harmless but
   useless (it would queue nothing new and race the first for the same sends). It has no port:
   it counts as ready while it runs.

If anything fails ``up`` stops what it started and says why.

Logs: ``<log_dir>/<name>.log`` per process and nginx's ``nginx.access.log`` (which replica served
each request: ``upstream=``) and ``nginx.error.log``. ``<run_dir>/pids.json`` lists every process
(``name``, ``role`` = nginx | actions | rasa | notify, ``pid``, ``start_ticks``, ``port``, ``health_url``,
``log``) plus ``balancer_url``; ``down`` and ``status`` read it. A pid is only signalled while its
start time (``/proc/<pid>/stat``) is still the recorded one, so a recycled pid is never hit.

Secrets: ``KEFU_ACTION_TOKEN``, ``KEFU_CUSTOMER_TOKEN_SECRET`` and ``KEFU_NOTIFY_TOKEN`` are
generated for the run when unset (as ``make run`` does), one value for every replica and the
notice worker; the keyed-hash secret is the one
``make run`` keeps. Behind nginx every client has nginx's address, so ``KEFU_TRUSTED_PROXIES``
defaults to loopback and the rate limits count the customer's ``X-Forwarded-For`` address.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import yaml

if __package__ in (None, ""):  # run as `python scripts/cluster.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.serve import (  # noqa: E402 - after the path fix above
    DEFAULT_MAX_REQUEST_BYTES,
    ROOT,
    VENV_BIN,
    Service,
    ServiceFailed,
    _demo_agent,
    _tail,
    _with_secrets,
    healthy,
    process_env,
    rasa_command,
    server_env,
)

CONFIG = ROOT / "deploy" / "cluster.yml"
TEMPLATE = ROOT / "deploy" / "nginx.conf.template"
ENDPOINTS = ROOT / "deploy" / "endpoints.production.yml"
CREDENTIALS = ROOT / "deploy" / "credentials.cluster.yml"
ENV_PREFIX = "KEFU_CLUSTER_"
READY_PATH = "/webhooks/health/ready"
#: Memory left for PostgreSQL, Redis, RabbitMQ, nginx and the action servers besides the replicas.
MEMORY_HEADROOM_GIB = 2
#: The roles in the order ``down`` stops them: no new notices and no new traffic first, the
#: action servers last.
STOP_ORDER = ("notify", "nginx", "rasa", "actions")
#: The live-push route of every replica (channels/notices.py), which the notice worker posts to.
NOTIFY_PATH = "/webhooks/live/notify"
DEFAULT_STOP_TIMEOUT_S = 20.0


class ClusterError(RuntimeError):
    """The cluster cannot start or be read as configured; the message says what to change."""


# --- configuration -----------------------------------------------------------------------------


def override_names(config: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """``KEFU_CLUSTER_<SECTION>_<KEY>`` → ``(section, key)`` for every value of ``config``."""
    return {
        f"{ENV_PREFIX}{section}_{key}".upper(): (section, key)
        for section, values in config.items()
        for key in values
    }


def _converted(name: str, text: str, default: Any) -> Any:
    """``text`` (an environment value) as the type of the value it replaces."""
    if isinstance(default, bool) or not isinstance(default, int):
        return text
    try:
        return int(text)
    except ValueError:
        raise ClusterError(f"{name}={text!r}: expected a whole number") from None


def load_config(
    path: Path = CONFIG, environ: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """The cluster config: ``path`` with the ``KEFU_CLUSTER_*`` overrides of ``environ``.

    Raises:
        ClusterError: the file is not a mapping of sections, an override names no value of it,
            an override has the wrong type, or the values do not make a cluster (see
            :func:`validate`).
    """
    environ = os.environ if environ is None else environ
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        raise ClusterError(f"{path}: expected sections of key: value pairs")
    names = override_names(config)
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX)):
        if name not in names:
            close = get_close_matches(name, names, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ClusterError(f"{name} is not a setting of {path.name}{hint}")
        section, key = names[name]
        config[section][key] = _converted(name, environ[name], config[section][key])
    validate(config)
    return config


def rasa_ports(config: Mapping[str, Mapping[str, Any]]) -> list[int]:
    """The ports of the Rasa replicas (``first_port + i``)."""
    rasa = config["rasa"]
    return [rasa["first_port"] + i for i in range(rasa["replicas"])]


def action_ports(config: Mapping[str, Mapping[str, Any]]) -> list[int]:
    """The ports of the action servers (``first_port + i``)."""
    actions = config["actions"]
    return [actions["first_port"] + i for i in range(actions["replicas"])]


def all_ports(config: Mapping[str, Mapping[str, Any]]) -> dict[int, str]:
    """Every port the cluster listens on → what listens there."""
    balancer = config["balancer"]
    ports: dict[int, str] = {}
    named = [(balancer["port"], "balancer"), (balancer["actions_port"], "actions balancer")]
    named += [(p, f"rasa-{i}") for i, p in enumerate(rasa_ports(config))]
    named += [(p, f"actions-{i}") for i, p in enumerate(action_ports(config))]
    for port, name in named:
        if port in ports:
            raise ClusterError(f"port {port} is given to both {ports[port]} and {name}")
        ports[port] = name
    return ports


def validate(config: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise :class:`ClusterError` unless ``config`` describes a cluster that can start."""
    for section in ("rasa", "actions"):
        replicas = config[section]["replicas"]
        if not isinstance(replicas, int) or replicas < 1:
            raise ClusterError(f"{section}.replicas must be 1 or more, got {replicas!r}")
    for port, name in all_ports(config).items():
        if not 1024 <= port <= 65535:
            raise ClusterError(f"{name}'s port {port} is outside 1024-65535")
    for section in ("tracker_store", "commerce_db"):
        if not str(config[section]["url"]).startswith("postgresql"):
            raise ClusterError(f"{section}.url must be a PostgreSQL URL (replicas share it)")
    for key in ("max_fails", "fail_timeout_s", "turn_timeout_s"):
        if config["balancer"][key] < 1:
            raise ClusterError(f"balancer.{key} must be 1 or more")


def check_endpoints_agree(
    config: Mapping[str, Mapping[str, Any]], endpoints: Path = ENDPOINTS
) -> None:
    """The values the endpoints file writes itself (not from the environment) must be the
    config's, or the replicas would use other stores than the ones ``up`` prepared.

    Raises:
        ClusterError: naming the value that differs.
    """
    with open(endpoints, encoding="utf-8") as f:
        written = yaml.safe_load(f)
    lock, broker = written.get("lock_store") or {}, written.get("event_broker") or {}
    differences = []
    if int(lock.get("db", 0)) != config["redis"]["lock_db"]:
        differences.append(f"lock_store.db {lock.get('db')} != redis.lock_db")
    if config["rabbitmq"]["queue"] not in (broker.get("queues") or []):
        differences.append(f"event_broker.queues {broker.get('queues')} lacks rabbitmq.queue")
    if int(broker.get("port", 5672)) != config["rabbitmq"]["port"]:
        differences.append(f"event_broker.port {broker.get('port', 5672)} != rabbitmq.port")
    if differences:
        raise ClusterError(
            f"{endpoints.name} and the cluster config differ: " + "; ".join(differences)
        )


def render_nginx(config: Mapping[str, Mapping[str, Any]], run_dir: Path, log_dir: Path) -> str:
    """``deploy/nginx.conf.template`` filled in for ``config``."""
    import jinja2

    balancer = config["balancer"]
    template = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    ).from_string(TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        run_dir=run_dir,
        log_dir=log_dir,
        user=pwd.getpwuid(os.geteuid()).pw_name,
        host=balancer["host"],
        port=balancer["port"],
        actions_port=balancer["actions_port"],
        max_fails=balancer["max_fails"],
        fail_timeout_s=balancer["fail_timeout_s"],
        turn_timeout_s=balancer["turn_timeout_s"],
        rasa_ports=rasa_ports(config),
        action_ports=action_ports(config),
        next_upstream_tries=max(config["rasa"]["replicas"], config["actions"]["replicas"]),
        max_body_bytes=DEFAULT_MAX_REQUEST_BYTES,
    )


def cluster_env(
    config: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str], run_dir: Path
) -> dict[str, str]:
    """The environment of every cluster process: ``environ`` with the ``KEFU_*`` values that
    ``deploy/endpoints.production.yml`` reads and the commerce database, from ``config``."""
    from channels.live import SOCKETIO_REDIS_URL_ENV
    from commerce.config import DATABASE_URL_ENV

    balancer, redis, rabbitmq = config["balancer"], config["redis"], config["rabbitmq"]
    env = {
        "KEFU_TRUSTED_PROXIES": "127.0.0.1/32",  # nginx reaches the replicas over loopback
        "KEFU_AGENT_TOKEN_FILE": str(run_dir / "agent-token"),
        **process_env(environ),
        "KEFU_ACTION_URL": f"http://{balancer['host']}:{balancer['actions_port']}/webhook",
        "KEFU_ACTION_TOKEN": environ.get("KEFU_ACTION_TOKEN") or secrets.token_hex(24),
        "KEFU_TRACKER_DB_URL": config["tracker_store"]["url"],
        "KEFU_REDIS_HOST": str(redis["host"]),
        "KEFU_REDIS_PORT": str(redis["port"]),
        "KEFU_RABBITMQ_HOST": str(rabbitmq["host"]),
        "KEFU_RABBITMQ_USER": str(rabbitmq["user"]),
        "KEFU_RABBITMQ_PASSWORD": str(rabbitmq["password"]),
        SOCKETIO_REDIS_URL_ENV: f"redis://{redis['host']}:{redis['port']}/{redis['socketio_db']}",
        DATABASE_URL_ENV: config["commerce_db"]["url"],
    }
    return _with_secrets(env)[0]


def live_urls(config: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every replica's own live-push route, on its loopback port (never the balancer's)."""
    return [f"http://127.0.0.1:{port}{NOTIFY_PATH}" for port in rasa_ports(config)]


def notify_env(config: Mapping[str, Mapping[str, Any]], env: Mapping[str, str]) -> dict[str, str]:
    """The notice worker's environment: the cluster's (``env``, the replicas' token and
    commerce database) with ``KEFU_NOTIFY_LIVE_URL`` naming each replica. Always this cluster's
    replicas: a value inherited from the shell would name another server (``make run``'s)."""
    from commerce.notify import LIVE_URL_ENV

    return {**env, LIVE_URL_ENV: ",".join(live_urls(config))}


def notice_worker(config: Mapping[str, Mapping[str, Any]]) -> Service:
    """The cluster's one notice worker (its log beside the others: ``<log_dir>/notify.log``)."""
    command = [str(VENV_BIN / "python"), "-m", "commerce", "notify"]
    return Service("notify", command, None, state_dirs(config)[1])


def state_dirs(config: Mapping[str, Mapping[str, Any]]) -> tuple[Path, Path]:
    """``(run_dir, log_dir)`` as absolute paths (relative ones are under the repository)."""
    files = config["files"]
    return ROOT / files["run_dir"], ROOT / files["log_dir"]


# --- what up needs from the machine ------------------------------------------------------------


def memory_available_gib() -> float:
    """MemAvailable of /proc/meminfo in GiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 / 1024
    raise ClusterError("no MemAvailable in /proc/meminfo")


def memory_needed_gib(config: Mapping[str, Mapping[str, Any]]) -> float:
    """What the replicas hold plus room for everything else on the machine."""
    return config["rasa"]["replicas"] * config["rasa"]["memory_gib"] + MEMORY_HEADROOM_GIB


def ensure_nginx(log_path: Path) -> str:
    """The nginx binary; installed with apt-get when missing and we are root.

    Raises:
        ClusterError: not installed and not root, or the installation failed.
    """
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found:
        return found
    if os.geteuid() != 0:
        raise ClusterError(
            "nginx is not installed and installing it needs root: run "
            "`sudo apt-get install -y nginx` (the system service need not run), then again."
        )
    print("==> installing nginx (apt-get install -y nginx)…", flush=True)
    command = ["apt-get", "install", "-y", "--no-install-recommends", "nginx"]
    with open(log_path, "ab") as log:
        code = subprocess.call(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    if code != 0 or not Path("/usr/sbin/nginx").exists():
        raise ClusterError(
            f"apt-get install nginx failed (code {code}); last lines of {log_path}:\n"
            f"{_tail(log_path)}"
        )
    return "/usr/sbin/nginx"


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database of ``url`` unless it exists (connecting as its user to
    the server's ``postgres`` database)."""
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    server = target.set(drivername="postgresql+psycopg2", database="postgres")
    engine = sa.create_engine(
        server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            ).first()
            if exists is None:
                quoted = engine.dialect.identifier_preparer.quote(target.database)
                connection.execute(sa.text(f"CREATE DATABASE {quoted}"))
    except sa.exc.OperationalError as e:
        raise ClusterError(f"cannot create database {target.database!r}: {e.orig}") from e
    finally:
        engine.dispose()


def prepare_commerce(env: dict[str, str], log_path: Path) -> None:
    """Migrate the commerce database of ``env`` and load the demo seed when it is empty."""
    python = [str(VENV_BIN / "python"), "-m", "commerce"]
    for step in (["upgrade"], ["seed", "--if-empty"]):
        with open(log_path, "ab") as log:
            code = subprocess.call(
                [*python, *step], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        if code != 0:
            raise ClusterError(
                f"python -m commerce {' '.join(step)} failed (code {code}); last lines of "
                f"{log_path}:\n{_tail(log_path)}"
            )


def services_down(config: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The stores the cluster needs that do not answer, as ``name host:port``."""
    import sqlalchemy as sa

    needed = []
    for section in ("tracker_store", "commerce_db"):
        url = sa.engine.make_url(config[section]["url"])
        needed.append(("PostgreSQL", url.host or "127.0.0.1", url.port or 5432))
    needed.append(("Redis", config["redis"]["host"], config["redis"]["port"]))
    needed.append(("RabbitMQ", config["rabbitmq"]["host"], config["rabbitmq"]["port"]))
    return sorted({f"{n} {h}:{p}" for n, h, p in needed if not port_open(h, p)})


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- the processes -----------------------------------------------------------------------------


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot, field 22 of /proc/<pid>/stat); None when
    there is no such process or it has already exited (a zombie)."""
    try:
        # "pid (comm) state ...": comm may hold spaces, so split after its ")".
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(record: Mapping[str, Any]) -> bool:
    """Whether the recorded process still runs (the same process, not a recycled pid)."""
    return (
        record.get("start_ticks") is not None
        and start_ticks(record["pid"]) == record["start_ticks"]
    )


def process_record(service: Service, role: str, port: int | None) -> dict[str, Any]:
    """What pids.json keeps of a started ``service``."""
    pid = service.process.pid
    return {
        "name": service.name,
        "role": role,
        "pid": pid,
        "start_ticks": start_ticks(pid),
        "port": port,
        "health_url": service.health_url,
        "log": str(service.log_path),
    }


def pids_path(run_dir: Path) -> Path:
    return run_dir / "pids.json"


def write_state(run_dir: Path, records: list[dict[str, Any]], balancer_url: str) -> None:
    """pids.json, replaced at once (a reader never sees half of it)."""
    partial = run_dir / "pids.json.partial"
    state = {"balancer_url": balancer_url, "processes": records}
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    partial.replace(pids_path(run_dir))


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """pids.json, or None when no cluster was started from ``run_dir``."""
    try:
        return json.loads(pids_path(run_dir).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def _signal(record: Mapping[str, Any], signum: int) -> None:
    """``signum`` to the recorded process and the processes it started (its process group:
    each was started in a session of its own)."""
    pid = record["pid"]
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status when it is our own child (``up`` and ``down`` in one
    process, as in the tests), so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait_gone(record: Mapping[str, Any], deadline: float) -> None:
    """Wait until the recorded process has ended or ``deadline`` passed."""
    while True:
        _reap(record["pid"])
        if not alive(record) or time.monotonic() >= deadline:
            return
        time.sleep(0.1)


def stop_processes(records: list[dict[str, Any]], timeout: float) -> list[str]:
    """Stop the recorded processes role by role (:data:`STOP_ORDER`): SIGTERM, then SIGKILL
    for what still runs after ``timeout`` seconds.

    Returns:
        One line per process saying how it ended.
    """
    report = []
    for role in STOP_ORDER:
        group = [r for r in records if r["role"] == role]
        running = [r for r in group if alive(r)]
        report += [f"{r['name']}: was not running" for r in group if r not in running]
        for record in running:
            _signal(record, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for record in running:
            _wait_gone(record, deadline)
        for record in running:
            if alive(record):
                _signal(record, signal.SIGKILL)
                _wait_gone(record, time.monotonic() + 5)
                report.append(f"{record['name']}: killed (no exit {timeout:g}s after SIGTERM)")
            else:
                report.append(f"{record['name']}: stopped")
    return report


# --- the commands ------------------------------------------------------------------------------


def balancer_url(config: Mapping[str, Mapping[str, Any]]) -> str:
    return f"http://{config['balancer']['host']}:{config['balancer']['port']}"


def planned_services(
    config: Mapping[str, Mapping[str, Any]], nginx: str, env: dict[str, str]
) -> list[tuple[Service, str, int | None]]:
    """``(service, role, port)`` of every process, in the order ``up`` starts them: the action
    servers and nginx first, so a replica's first turn finds them."""
    run_dir, log_dir = state_dirs(config)
    python = str(VENV_BIN / "python")
    plan: list[tuple[Service, str, int | None]] = []
    for i, port in enumerate(action_ports(config)):
        command = [python, "-m", "actions", "--port", str(port)]
        health = f"http://127.0.0.1:{port}/health"
        plan.append((Service(f"actions-{i}", command, health, log_dir), "actions", port))
    nginx_command = [nginx, "-c", str(run_dir / "nginx.conf"), "-p", f"{run_dir}/"]
    nginx_command += ["-e", str(log_dir / "nginx.error.log")]
    plan.append((Service("nginx", nginx_command, None, log_dir), "nginx", None))
    model = ROOT / config["rasa"]["model"]
    for i, port in enumerate(rasa_ports(config)):
        command = rasa_command(model, ENDPOINTS, CREDENTIALS, "127.0.0.1", port, env)
        health = f"http://127.0.0.1:{port}{READY_PATH}"
        plan.append((Service(f"rasa-{i}", command, health, log_dir), "rasa", port))
    return plan


def check_can_start(config: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise :class:`ClusterError` naming what stops the cluster from starting here."""
    run_dir, _ = state_dirs(config)
    state = read_state(run_dir)
    if state and any(alive(r) for r in state["processes"]):
        raise ClusterError(
            f"a cluster is already running (see {pids_path(run_dir)}); "
            "stop it first: python scripts/cluster.py down"
        )
    model = ROOT / config["rasa"]["model"]
    if not model.exists():
        raise ClusterError(f"no trained model at {model}; run `make train` first")
    check_endpoints_agree(config)
    absent = services_down(config)
    if absent:
        raise ClusterError("these services do not answer: " + ", ".join(absent))
    busy = [
        f"{port} ({name})"
        for port, name in all_ports(config).items()
        if port_open("127.0.0.1", port)
    ]
    if busy:
        raise ClusterError("ports already in use: " + ", ".join(busy))
    needed, available = memory_needed_gib(config), memory_available_gib()
    if available < needed:
        raise ClusterError(
            f"{config['rasa']['replicas']} replicas need about {needed:g} GiB of memory and "
            f"{available:.1f} GiB is available; lower KEFU_CLUSTER_RASA_REPLICAS or free memory"
        )


def up(config: dict[str, dict[str, Any]], startup_timeout: float, stop_timeout: float) -> None:
    """Start the cluster and return once every part answers.

    Raises:
        ClusterError: it could not start (whatever had started is stopped again).
    """
    check_can_start(config)
    run_dir, log_dir = state_dirs(config)
    for folder in (run_dir / "tmp", log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    nginx = ensure_nginx(log_dir / "apt.log")
    for section in ("tracker_store", "commerce_db"):
        ensure_database(config[section]["url"])
    env = cluster_env(config, os.environ, run_dir)
    prepare_commerce(env, log_dir / "commerce.log")
    agent_ready = _demo_agent(env)
    conf = run_dir / "nginx.conf"
    conf.write_text(render_nginx(config, run_dir, log_dir), encoding="utf-8")
    checked = subprocess.run(
        [
            nginx,
            "-t",
            "-q",
            "-c",
            str(conf),
            "-p",
            f"{run_dir}/",
            "-e",
            str(log_dir / "nginx.error.log"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if checked.returncode != 0:
        raise ClusterError(f"nginx refuses {conf}:\n{checked.stderr.strip()}")

    url = balancer_url(config)
    plan = planned_services(config, nginx, env)
    records: list[dict[str, Any]] = []
    try:
        for service, role, port in plan:
            # Only the public servers get the request size limit (see serve.py).
            service.start(server_env(env) if role == "rasa" else env)
            records.append(process_record(service, role, port))
            write_state(run_dir, records, url)
        print("==> waiting for the action servers, nginx and the Rasa replicas…", flush=True)
        deadline = time.monotonic() + startup_timeout
        for (service, _, _), record in zip(plan, records, strict=True):
            _wait_ready(record, service.health_url, service.log_path, deadline)
        # Last, the way the shop's traffic comes: through nginx to a ready replica.
        nginx_record = next(r for r in records if r["role"] == "nginx")
        _wait_ready(nginx_record, url + READY_PATH, log_dir / "nginx.error.log", deadline)
        # The notice worker once the replicas answer, so its first pass can reach the tabs.
        worker = notice_worker(config)
        worker.start(notify_env(config, env))
        records.append(process_record(worker, "notify", None))
        write_state(run_dir, records, url)
        _wait_ready(records[-1], None, worker.log_path, deadline)
    except (ServiceFailed, OSError, KeyboardInterrupt) as e:
        stop_processes(records, stop_timeout)
        pids_path(run_dir).unlink(missing_ok=True)
        raise ClusterError(f"the cluster did not start: {e}") from e
    print(banner(config, agent_ready), flush=True)


def _wait_ready(record: Mapping[str, Any], url: str | None, log: Path, deadline: float) -> None:
    """Wait until ``url`` answers 2xx (a process without one: while it runs).

    Raises:
        ServiceFailed: the process ended, or ``deadline`` passed.
    """
    while time.monotonic() < deadline:
        _reap(record["pid"])
        if not alive(record):
            raise ServiceFailed(f"{record['name']} exited; last lines of {log}:\n{_tail(log)}")
        if url is None or healthy(url):
            return
        time.sleep(0.5)
    raise ServiceFailed(
        f"{record['name']} did not answer {url} in time (last answer: {last_answer(url)}); "
        f"last lines of {log}:\n{_tail(log)}"
    )


def last_answer(url: str) -> str:
    """What ``url`` answers now, in short (a readiness route says which check fails)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - loopback
            return f"{reply.status} {reply.read(300).decode(errors='replace')}"
    except urllib.error.HTTPError as e:
        return f"{e.code} {e.read(300).decode(errors='replace')}"
    except OSError as e:
        return f"no answer ({e})"


def banner(config: Mapping[str, Mapping[str, Any]], agent_ready: bool) -> str:
    run_dir, log_dir = state_dirs(config)
    url = balancer_url(config)
    replicas = ", ".join(str(p) for p in rasa_ports(config))
    actions = ", ".join(str(p) for p in action_ports(config))
    agent_token = run_dir / "agent-token"
    agent = f"(sign in as 'demo', token in {agent_token})" if agent_ready else "(no demo account)"
    return f"""
Kefu cluster is running: nginx {url} → Rasa replicas on {replicas};
  the replicas call the action servers ({actions}) through nginx on port {config["balancer"]["actions_port"]}.
  Web chat:       {url}/webhooks/webchat/
  REST:           {url}/webhooks/rest/webhook
  Agent console:  {url}/webhooks/agent/   {agent}
  Readiness:      http://127.0.0.1:<replica port>{READY_PATH}   liveness: /
  Notices:        one worker (python -m commerce notify) → each replica's {NOTIFY_PATH}, else email
  Logs:           {log_dir}/   (nginx.access.log: upstream= names the replica of each request)
  Processes:      {pids_path(run_dir)}
  Status / stop:  python scripts/cluster.py status  |  make down-cluster
"""


def status(config: Mapping[str, Mapping[str, Any]]) -> int:
    """Print each process of the cluster; 0 when all run and answer, 1 when not, 3 when no
    cluster was started."""
    run_dir, _ = state_dirs(config)
    state = read_state(run_dir)
    if state is None:
        print(f"no cluster: {pids_path(run_dir)} does not exist (make run-cluster starts one)")
        return 3
    ok = True
    for record in state["processes"]:
        running = alive(record)
        answers = running and (record["health_url"] is None or healthy(record["health_url"]))
        ok = ok and answers
        state_word = "running" if running else "stopped"
        health = record["health_url"] or "-"
        verdict = "ready" if answers else ("NOT ANSWERING" if running else "-")
        port = record["port"] or "-"
        print(
            f"{record['name']:<10} pid {record['pid']:<8} port {port!s:<6} {state_word:<8} {verdict:<14} {health}"
        )
    through = healthy(state["balancer_url"] + READY_PATH)
    ok = ok and through
    print(
        f"balancer   {state['balancer_url']}  {'forwards to a ready replica' if through else 'NOT ANSWERING'}"
    )
    return 0 if ok else 1


def down(config: Mapping[str, Mapping[str, Any]], stop_timeout: float) -> int:
    """Stop every recorded process and forget them; 0 also when none was running."""
    run_dir, _ = state_dirs(config)
    state = read_state(run_dir)
    if state is None:
        print(f"no cluster to stop ({pids_path(run_dir)} does not exist)")
        return 0
    for line in stop_processes(state["processes"], stop_timeout):
        print(line)
    pids_path(run_dir).unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--stop-timeout", type=float, default=DEFAULT_STOP_TIMEOUT_S)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.command == "up":
            up(config, args.startup_timeout, args.stop_timeout)
            return 0
        if args.command == "status":
            return status(config)
        return down(config, args.stop_timeout)
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
