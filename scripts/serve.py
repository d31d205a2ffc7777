"""Starts Kefu's action server and Rasa server together (what `make run` and `make shell` call).

Waits until both answer their health checks, prints where to chat, and stops both cleanly
on Ctrl-C (SIGINT) or SIGTERM. Logs go to var/log/.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


class ServiceFailed(RuntimeError):
    """A server did not come up; the message names it and points at its log."""


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - localhost only
            return 200 <= reply.status < 300
    except (urllib.error.URLError, OSError):
        return False


class Service:
    """One child process with a health URL and a log file."""

    def __init__(self, name: str, command: list[str], health_url: str, log_dir: Path) -> None:
        self.name = name
        self.command = command
        self.health_url = health_url
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, env: dict[str, str]) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        log.write(f"\n==> {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(self.command)}\n".encode())
        log.flush()
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

    def wait_healthy(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceFailed(
                    f"{self.name} exited with code {self.process.returncode}; "
                    f"last lines of {self.log_path}:\n{_tail(self.log_path)}"
                )
            if _healthy(self.health_url):
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
    return parser.parse_args(argv)


#: Secrets a local run makes up when the environment does not set them (printed in the banner).
GENERATED_SECRETS = ("KEFU_AGENT_TOKEN", "KEFU_CUSTOMER_TOKEN_SECRET")
DEMO_CUSTOMER = "alice@example.com"


def _with_secrets(env: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """``env`` with a random value for each unset secret, and the names that were made up."""
    made_up = [name for name in GENERATED_SECRETS if not env.get(name)]
    return {**env, **{name: secrets.token_urlsafe(24) for name in made_up}}, made_up


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


def _print_banner(args: argparse.Namespace, env: dict[str, str], made_up: list[str]) -> None:
    base = f"http://{args.host}:{args.port}"
    token = _demo_token(env)
    signed_in = (
        f"  Signed in as {DEMO_CUSTOMER}: {base}/webhooks/webchat/#token={token}\n" if token else ""
    )
    generated = (
        "  (generated for this run: " + ", ".join(made_up) + "; set them to keep them)\n"
        if made_up
        else ""
    )
    agent_token = env["KEFU_AGENT_TOKEN"] if "KEFU_AGENT_TOKEN" in made_up else "$KEFU_AGENT_TOKEN"
    print(
        f"""
Kefu is running.
  Web chat:              {base}/webhooks/webchat/
{signed_in}  Agent console:         {base}/webhooks/agent/   (agent token: {agent_token})
{generated}  socket.io:             {base}/socket.io   (events: user_uttered / bot_uttered)
  REST:                  {base}/webhooks/rest/webhook
  Action server:         http://{args.host}:{args.actions_port}/health
  Logs:                  {args.log_dir}/rasa.log, {args.log_dir}/actions.log

Try it:
  curl -s {base}/webhooks/rest/webhook -H 'Content-Type: application/json' \\
       -d '{{"sender": "me", "message": "hi"}}'
  curl -s {base}/webhooks/rest/webhook -H 'Content-Type: application/json' \\
       -d '{{"sender": "me", "message": "你好"}}'

Press Ctrl-C to stop both servers.
""",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    model = ROOT / args.model
    if not model.exists():
        print(f"error: no trained model at {model}; run `make train` first.", file=sys.stderr)
        return 2
    log_dir = ROOT / args.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    (ROOT / "var").mkdir(exist_ok=True)
    env, made_up = _with_secrets(
        {**os.environ, "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false"}
    )
    endpoints = endpoints_for_port(ROOT / args.endpoints, args.actions_port, ROOT / "var")

    actions = Service(
        "actions",
        [str(VENV_BIN / "python"), "-m", "actions", "--port", str(args.actions_port)],
        f"http://127.0.0.1:{args.actions_port}/health",
        log_dir,
    )
    rasa_command = [
        str(VENV_BIN / "rasa"),
        "run",
        "--model",
        str(model),
        "--endpoints",
        str(endpoints),
        "--credentials",
        args.credentials,
        "--interface",
        args.host,
        "--port",
        str(args.port),
        "--cors",
        "*",
    ]
    rasa = Service("rasa", rasa_command, f"http://127.0.0.1:{args.port}/", log_dir)

    def _request_stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, _request_stop)
    services = [actions] if args.shell else [actions, rasa]
    try:
        for service in services:
            service.start(env)
        deadline = time.monotonic() + args.startup_timeout
        print("==> waiting for the action server and the Rasa server to answer…", flush=True)
        for service in services:
            service.wait_healthy(deadline)
        if args.shell:
            shell = [str(VENV_BIN / "rasa"), "shell", "--model", str(model)]
            return subprocess.call([*shell, "--endpoints", str(endpoints)], cwd=ROOT, env=env)
        _print_banner(args, env, made_up)
        while True:
            for service in services:
                if service.process is not None and service.process.poll() is not None:
                    raise ServiceFailed(
                        f"{service.name} stopped unexpectedly (code {service.process.returncode});"
                        f" last lines of {service.log_path}:\n{_tail(service.log_path)}"
                    )
            time.sleep(1)
    except KeyboardInterrupt:
        print("\n==> stopping…", flush=True)
        return 0
    except ServiceFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        for service in reversed(services):
            service.stop()
        print("==> stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
