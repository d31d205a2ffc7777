"""Starts Kefu's action server and Rasa server together (what `make run` and `make shell` call).

Waits until both answer their health checks, prints where to chat, and stops both cleanly
on Ctrl-C (SIGINT) or SIGTERM. Logs go to var/log/.

With an SQL tracker store (the default endpoints.yml) a third process follows it into the
analytics tables: ``python -m analytics upgrade``, then ``python -m analytics consume
--from-tracker-store`` without ``--once`` or ``--max-seconds``, so it polls until stopped
(events reach the tables a few seconds after they happen: it reads only rows older than its
settle time). Its log is ``analytics.log`` next to ``rasa.log``. Analytics never takes the chat
down: if the upgrade fails or the consumer dies, the error is printed and the chat keeps
running. ``--no-analytics`` or ``KEFU_ANALYTICS=0`` leaves it out, and so does ``--shell``;
what it did not read, the next run reads (the consumer resumes after its high-water mark).

A fourth process sends proactive notices (``python -m commerce notify``, log ``notify.log``):
back in stock, a late shipment, a completed refund, to the customer's open web chat through
this Rasa server's ``/webhooks/live/notify`` (``KEFU_NOTIFY_LIVE_URL``, bearer
``KEFU_NOTIFY_TOKEN``, made up per run unless set), else by email. Like analytics, it never
takes the chat down.

Server settings it applies (environment):

- ``KEFU_CORS_ORIGINS``: comma-separated web origins allowed to call the Rasa server from a
  browser (``rasa run --cors``), e.g. ``https://shop.example``; unset: none (same origin only).
- ``SANIC_REQUEST_MAX_SIZE``: largest request body the Rasa server accepts, refused before it is
  buffered (default 1 MiB here; Sanic reads ``SANIC_*`` settings from the environment when the
  app is made). The action server, which receives whole trackers from Rasa on localhost, keeps
  Sanic's default.
- ``KEFU_DEMO_LINKS=0``: make no signed-in chat link for the demo customer (by default it is
  written to ``var/demo-link``, ``KEFU_DEMO_LINK_FILE``, and the banner names the file).

The agent console needs an account: a local run makes one named ``demo`` (``python -m commerce
agent add demo --token-file var/agent-token --if-missing``); the banner names the file, never
a token.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


class ServiceFailed(RuntimeError):
    """A server did not come up; the message names it and points at its log."""


def healthy(url: str) -> bool:
    """Whether ``url`` answers 2xx within 2 seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - localhost only
            return 200 <= reply.status < 300
    except (urllib.error.URLError, OSError):
        return False


class Service:
    """One child process with a log file and, for a server, a health URL.

    A process without one (the analytics consumer listens on nothing) counts as healthy while
    it runs.
    """

    def __init__(
        self, name: str, command: list[str], health_url: str | None, log_dir: Path
    ) -> None:
        self.name = name
        self.command = command
        self.health_url = health_url
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, env: dict[str, str]) -> None:
        log = _open_log(self.log_path, self.command)
        # A new process group, so Ctrl-C in the terminal reaches us first and we stop
        # the children in order instead of racing them.
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def exited(self) -> bool:
        """Whether the process was started and has ended."""
        return self.process is not None and self.process.poll() is not None

    def wait_healthy(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.exited():
                raise ServiceFailed(
                    f"{self.name} exited with code {self.process.returncode}; "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            if self.health_url is None or healthy(self.health_url):
                return
            time.sleep(0.5)
        raise ServiceFailed(
            f"{self.name} did not answer {self.health_url} in time; "
            f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


LOCAL_ACTION_URL = re.compile(r"(https?://(?:localhost|127\.0\.0\.1)):\d+(/webhook)")


def endpoints_for_port(endpoints: Path, actions_port: int, out_dir: Path) -> Path:
    """The endpoints file, pointing a local action server URL at `actions_port`.

    Rewritten as text, not re-dumped YAML, so `${VAR}` placeholders stay exactly as written.
    """
    text = endpoints.read_text(encoding="utf-8")
    rewritten = LOCAL_ACTION_URL.sub(rf"\g<1>:{actions_port}\g<2>", text)
    if rewritten == text:
        return endpoints
    effective = out_dir / f"endpoints.{actions_port}.yml"
    effective.write_text(rewritten, encoding="utf-8")
    return effective


def _open_log(path: Path, command: list[str]):
    """``path`` opened for appending, with a line naming the command and the time."""
    log = open(path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    log.write(f"\n==> {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
    log.flush()
    return log


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="models/kefu.tar.gz")
    parser.add_argument("--endpoints", default=os.environ.get("KEFU_ENDPOINTS", "endpoints.yml"))
    parser.add_argument("--credentials", default="credentials.yml")
    parser.add_argument("--host", default=os.environ.get("KEFU_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("KEFU_PORT", "5005")))
    parser.add_argument(
        "--actions-port", type=int, default=int(os.environ.get("KEFU_ACTIONS_PORT", "5055"))
    )
    parser.add_argument("--log-dir", default="var/log")
    parser.add_argument("--startup-timeout", type=float, default=600.0)
    parser.add_argument("--shell", action="store_true", help="chat in this terminal instead")
    parser.add_argument(
        "--no-analytics",
        action="store_true",
        help=f"do not run the analytics consumer (also {ANALYTICS_ENV}=0)",
    )
    return parser.parse_args(argv)


#: Secrets a local run makes up when the environment does not set them (named in the banner).
GENERATED_SECRETS = ("KEFU_CUSTOMER_TOKEN_SECRET", "KEFU_NOTIFY_TOKEN")
DEMO_CUSTOMER = "alice@example.com"
DEMO_AGENT = "demo"
#: Where the demo agent's token is written (KEFU_AGENT_TOKEN_FILE overrides it, e.g. in tests).
AGENT_TOKEN_FILE_ENV = "KEFU_AGENT_TOKEN_FILE"
DEFAULT_AGENT_TOKEN_FILE = "var/agent-token"
CORS_ENV = "KEFU_CORS_ORIGINS"
DEMO_LINKS_ENV = "KEFU_DEMO_LINKS"
#: Where the demo customer's signed-in link is written (it carries a token, so never printed).
DEMO_LINK_FILE_ENV = "KEFU_DEMO_LINK_FILE"
DEFAULT_DEMO_LINK_FILE = "var/demo-link"
MAX_REQUEST_ENV = "SANIC_REQUEST_MAX_SIZE"
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
#: Each Kefu server works through one message at a time on its event loop. OpenBLAS (numpy's
#: BLAS) would keep a thread per core that spins between calls: on 2 cores it cost a Rasa
#: replica as much CPU as its turns did, 88 -> 48 CPU-ms a turn with one thread
#: (docs/BENCHMARKS.md, "Load on the replica topology"). The environment may still set it.
BLAS_THREADS_ENV = {"OPENBLAS_NUM_THREADS": "1"}
#: ``0`` leaves the analytics consumer out (as ``--no-analytics`` does).
ANALYTICS_ENV = "KEFU_ANALYTICS"


def sql_tracker_store(endpoints: Path) -> bool:
    """Whether ``endpoints`` configures an SQL tracker store, the one the consumer can follow."""
    from channels.tracker_store import SQL_TYPES  # imports Rasa: only when the answer matters

    with open(endpoints, encoding="utf-8") as f:
        section = (yaml.safe_load(f) or {}).get("tracker_store")
    kind = section.get("type") if isinstance(section, dict) else None
    return isinstance(kind, str) and kind.lower() in SQL_TYPES


def analytics_off(args: argparse.Namespace, env: dict[str, str], endpoints: Path) -> str | None:
    """Why the analytics consumer does not run, or None when it does."""
    if args.no_analytics:
        return "--no-analytics"
    if env.get(ANALYTICS_ENV, "1").strip() == "0":
        return f"{ANALYTICS_ENV}=0"
    if args.shell:
        return "--shell"
    if not sql_tracker_store(endpoints):
        return "the tracker store is not SQL"
    return None


def analytics_commands(endpoints: Path) -> tuple[list[str], list[str]]:
    """The analytics ``upgrade`` command and the ``consume`` command that follows the tracker
    store of ``endpoints`` (neither ``--once`` nor ``--max-seconds``: it polls until stopped)."""
    analytics = [str(VENV_BIN / "python"), "-m", "analytics"]
    consume = ["consume", "--from-tracker-store", "--endpoints", str(endpoints)]
    return [*analytics, "upgrade"], [*analytics, *consume]


def upgrade_analytics(command: list[str], env: dict[str, str], log_path: Path) -> bool:
    """Run the analytics upgrade into ``log_path``; False, after printing why, when it failed."""
    with _open_log(log_path, command) as log:
        code = subprocess.call(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        print(
            f"warning: no analytics this run: the upgrade failed (code {code}); "
            f"last lines of {log_path}:\n{_tail(log_path)}",
            file=sys.stderr,
        )
    return code == 0


def check_services(required: list[Service], optional: list[Service]) -> list[Service]:
    """Raise if a required service stopped; print which optional ones stopped.

    Returns:
        The optional services still running.

    Raises:
        ServiceFailed: a required service stopped.
    """
    for service in required:
        if service.exited():
            raise ServiceFailed(
                f"{service.name} stopped unexpectedly (code {service.process.returncode});"
                f" last lines of {service.log_path}:\n{_tail(service.log_path)}"
            )
    running = []
    for service in optional:
        if service.exited():
            print(
                f"warning: {service.name} stopped (code {service.process.returncode}); the chat"
                f" keeps running; last lines of {service.log_path}:\n{_tail(service.log_path)}",
                file=sys.stderr,
                flush=True,
            )
        else:
            running.append(service)
    return running


def cors_arguments(origins: str | None) -> list[str]:
    """``rasa run`` arguments for ``KEFU_CORS_ORIGINS``: ``["--cors", origin, ...]``, or none.

    ``rasa run --cors`` takes the origins as separate values (``nargs="*"``) and hands them to
    Sanic-CORS; without the flag Rasa allows no cross-origin requests.
    """
    listed = [origin.strip() for origin in (origins or "").split(",") if origin.strip()]
    return ["--cors", *listed] if listed else []


def rasa_command(
    model: Path, endpoints: Path, credentials: str | Path, host: str, port: int, env: dict[str, str]
) -> list[str]:
    """The ``rasa run`` command line of one Rasa server (CORS only for ``KEFU_CORS_ORIGINS``);
    ``make run`` starts one, ``scripts/cluster.py`` one per replica."""
    return [
        str(VENV_BIN / "rasa"),
        "run",
        "--model",
        str(model),
        "--endpoints",
        str(endpoints),
        "--credentials",
        str(credentials),
        "--interface",
        host,
        "--port",
        str(port),
        *cors_arguments(env.get(CORS_ENV)),
    ]


def rasa_run_command(
    args: argparse.Namespace, model: Path, endpoints: Path, env: dict[str, str]
) -> list[str]:
    """The ``rasa run`` command line of ``make run`` (see :func:`rasa_command`)."""
    return rasa_command(model, endpoints, args.credentials, args.host, args.port, env)


def process_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of every Kefu process a local run starts: ``environ`` with this
    checkout on the path, no telemetry, and one BLAS thread (unless ``environ`` sets it)."""
    return {
        **BLAS_THREADS_ENV,
        **environ,
        "PYTHONPATH": str(ROOT),
        "RASA_TELEMETRY_ENABLED": "false",
    }


def server_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` for the Rasa server: with Sanic's request size limit (unless set)."""
    return {MAX_REQUEST_ENV: str(DEFAULT_MAX_REQUEST_BYTES), **env}


def _with_secrets(env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """``env`` with a random value for each unset secret, and the names that were made up.

    The keyed hashes (``commerce.config.hash_secret``: ``KEFU_HASH_SECRET``, else the token
    secret) must not change with the run, or the same order and client would hash differently
    from the last run and the analytics tables would lose a customer's earlier contacts about
    an order. So when neither is set, the hash secret is read from (or first written to)
    ``$KEFU_HASH_SECRET_FILE`` (``var/hash-secret``, this user only).
    """
    made_up = [name for name in GENERATED_SECRETS if not env.get(name)]
    env = {**env, **{name: secrets.token_urlsafe(24) for name in made_up}}
    from commerce.config import (
        HASH_SECRET_ENV,
        TOKEN_SECRET_ENV,
        hash_secret_file,
        kept_hash_secret,
    )

    if not env.get(HASH_SECRET_ENV) and TOKEN_SECRET_ENV in made_up:
        kept = kept_hash_secret(env)
        if not kept:
            kept = secrets.token_urlsafe(32)
            write_secret_file(str(hash_secret_file(env)), kept)
        env[HASH_SECRET_ENV] = kept
    return env, made_up


def _demo_token(env: dict[str, str]) -> str | None:
    """A signed token for the seeded demo customer (docs/SEED.md), or None if there is none."""
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "commerce", "token", DEMO_CUSTOMER],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def agent_token_file(env: dict[str, str]) -> str:
    return env.get(AGENT_TOKEN_FILE_ENV) or DEFAULT_AGENT_TOKEN_FILE


def demo_link_file(env: dict[str, str]) -> str:
    return env.get(DEMO_LINK_FILE_ENV) or DEFAULT_DEMO_LINK_FILE


def write_secret_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user only (0600), creating its folder."""
    target = ROOT / path
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.chmod(target, 0o600)


def _demo_agent(env: dict[str, str]) -> bool:
    """Make the demo agent account (its token goes to the token file, mode 0600) unless it
    exists with its file; False when that failed (the banner then says how to make one)."""
    result = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "commerce", "agent", "add", DEMO_AGENT]
        + ["--token-file", agent_token_file(env), "--if-missing"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(f"warning: no demo agent account: {result.stderr.strip()}", file=sys.stderr)
    return result.returncode == 0


def banner(
    args: argparse.Namespace,
    env: dict[str, str],
    made_up: list[str],
    *,
    demo_token: str | None,
    agent_ready: bool,
    analytics_off: str | None = "not started",
) -> str:
    """The startup banner. It names where secrets are, never prints one: the demo customer's
    signed-in link carries a token, so it is written to a file (mode 0600) that the banner
    names, and only when KEFU_DEMO_LINKS is not 0."""
    base = f"http://{args.host}:{args.port}"
    signed_in = ""
    if demo_token and env.get(DEMO_LINKS_ENV, "1") != "0":
        write_secret_file(demo_link_file(env), f"{base}/webhooks/webchat/#token={demo_token}")
        signed_in = (
            f"  Demo customer ({DEMO_CUSTOMER}), signed in: open the link in "
            f"{demo_link_file(env)}\n"
        )
    generated = (
        "  (generated for this run: " + ", ".join(made_up) + "; set them to keep them)\n"
        if made_up
        else ""
    )
    agent = (
        f"(sign in as {DEMO_AGENT!r}, token in {agent_token_file(env)})"
        if agent_ready
        else "(add an account: python -m commerce agent add NAME)"
    )
    cors = env.get(CORS_ENV, "").strip() or "none (same origin only)"
    logs = f"{args.log_dir}/rasa.log, {args.log_dir}/actions.log, {args.log_dir}/notify.log"
    if analytics_off is None:
        analytics = "following the tracker store into the analytics tables"
        logs += f", {args.log_dir}/analytics.log"
    else:
        analytics = f"off ({analytics_off})"
    return f"""
Kefu is running.
  Web chat:              {base}/webhooks/webchat/
{signed_in}  Agent console:         {base}/webhooks/agent/   {agent}
{generated}  socket.io:             {base}/socket.io   (events: user_uttered / bot_uttered)
  REST:                  {base}/webhooks/rest/webhook
  Action server:         http://{args.host}:{args.actions_port}/health
  Analytics consumer:    {analytics}
  Logs:                  {logs}
  Cross-origin callers:  {cors}   ({CORS_ENV})

Try it:
  curl -s {base}/webhooks/rest/webhook -H 'Content-Type: application/json' \\
       -d '{{"sender": "me", "message": "hi"}}'
  curl -s {base}/webhooks/rest/webhook -H 'Content-Type: application/json' \\
       -d '{{"sender": "me", "message": "你好"}}'

Press Ctrl-C to stop everything.
"""


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    model = ROOT / args.model
    if not model.exists():
        print(f"error: no trained model at {model}; run `make train` first.", file=sys.stderr)
        return 2
    log_dir = ROOT / args.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    (ROOT / "var").mkdir(exist_ok=True)
    env, made_up = _with_secrets(process_env(os.environ))
    endpoints = endpoints_for_port(ROOT / args.endpoints, args.actions_port, ROOT / "var")

    actions = Service(
        "actions",
        [str(VENV_BIN / "python"), "-m", "actions", "--port", str(args.actions_port)],
        f"http://127.0.0.1:{args.actions_port}/health",
        log_dir,
    )
    rasa_command = rasa_run_command(args, model, endpoints, env)
    rasa = Service("rasa", rasa_command, f"http://127.0.0.1:{args.port}/", log_dir)
    upgrade_command, consume_command = analytics_commands(endpoints)
    consumer = Service("analytics", consume_command, None, log_dir)
    no_analytics = analytics_off(args, env, endpoints)
    # Proactive notices (commerce/notify.py): live to this server's web chat, else by email.
    env.setdefault("KEFU_NOTIFY_LIVE_URL", f"http://127.0.0.1:{args.port}/webhooks/live/notify")
    notifier = Service(
        "notify", [str(VENV_BIN / "python"), "-m", "commerce", "notify"], None, log_dir
    )

    def _request_stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, _request_stop)
    services = [actions] if args.shell else [actions, rasa]
    optional: list[Service] = []
    try:
        if no_analytics is None and not upgrade_analytics(upgrade_command, env, consumer.log_path):
            no_analytics = "the upgrade failed"
        for service in services:
            # Only the public server gets the request size limit: the action server receives
            # whole trackers from Rasa, which can outgrow it.
            service.start(server_env(env) if service is rasa else env)
        deadline = time.monotonic() + args.startup_timeout
        print("==> waiting for the action server and the Rasa server to answer…", flush=True)
        for service in services:
            service.wait_healthy(deadline)
        if args.shell:
            shell = [str(VENV_BIN / "rasa"), "shell", "--model", str(model)]
            return subprocess.call([*shell, "--endpoints", str(endpoints)], cwd=ROOT, env=env)
        if no_analytics is None:
            # Only now: until Rasa has made the tracker store's events table, the consumer
            # finds nothing to follow and exits.
            try:
                consumer.start(env)
                consumer.wait_healthy(deadline)
                optional.append(consumer)
            except (OSError, ServiceFailed) as e:
                print(f"warning: no analytics this run: {e}", file=sys.stderr)
                no_analytics = "it did not start"
            try:
                notifier.start(env)
                notifier.wait_healthy(deadline)
                optional.append(notifier)
            except (OSError, ServiceFailed) as e:
                print(f"warning: no proactive notices this run: {e}", file=sys.stderr)
        agent_ready = _demo_agent(env)
        print(
            banner(
                args,
                env,
                made_up,
                demo_token=_demo_token(env),
                agent_ready=agent_ready,
                analytics_off=no_analytics,
            ),
            flush=True,
        )
        while True:
            optional = check_services(services, optional)
            time.sleep(1)
    except KeyboardInterrupt:
        print("\n==> stopping…", flush=True)
        return 0
    except ServiceFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for service in [notifier, consumer, *reversed(services)]:
            service.stop()
        print("==> stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
