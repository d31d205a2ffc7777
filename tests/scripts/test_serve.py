import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from scripts.serve import (
    GENERATED_SECRETS,
    Service,
    ServiceFailed,
    _parse_args,
    _with_secrets,
    analytics_commands,
    analytics_off,
    banner,
    check_services,
    cors_arguments,
    endpoints_for_port,
    process_env,
    rasa_run_command,
    server_env,
    upgrade_analytics,
)
from tests.helpers import ROOT
from tests.helpers.network import free_port, service_reachable

ENDPOINTS = """action_endpoint:
  url: "http://localhost:5055/webhook"
  token: ${KEFU_ACTION_TOKEN}
tracker_store:
  type: SQL
  db: var/tracker.db
"""


def test_local_action_url_follows_the_actions_port(tmp_path):
    source = tmp_path / "endpoints.yml"
    source.write_text(ENDPOINTS)
    effective = endpoints_for_port(source, 6123, tmp_path)
    assert effective != source
    text = effective.read_text()
    assert 'url: "http://localhost:6123/webhook"' in text
    assert "token: ${KEFU_ACTION_TOKEN}" in text  # placeholders untouched
    assert "db: var/tracker.db" in text


def test_default_port_and_remote_urls_are_left_alone(tmp_path):
    source = tmp_path / "endpoints.yml"
    source.write_text(ENDPOINTS)
    assert endpoints_for_port(source, 5055, tmp_path) == source
    remote = tmp_path / "remote.yml"
    remote.write_text('action_endpoint:\n  url: "http://actions.internal:5055/webhook"\n')
    assert endpoints_for_port(remote, 6123, tmp_path) == remote


def test_unset_secrets_are_made_up_per_run_and_set_ones_are_kept(tmp_path):
    kept_file = {"KEFU_HASH_SECRET_FILE": str(tmp_path / "hash-secret")}
    env, made_up = _with_secrets({"PATH": "/bin", **kept_file})
    assert made_up == list(GENERATED_SECRETS) == ["KEFU_CUSTOMER_TOKEN_SECRET", "KEFU_NOTIFY_TOKEN"]
    assert all(len(env[name]) >= 32 for name in GENERATED_SECRETS)
    secret = "KEFU_CUSTOMER_TOKEN_SECRET"
    assert _with_secrets(kept_file)[0][secret] != env[secret]
    kept, made_up = _with_secrets({secret: "mine", **kept_file})
    assert kept[secret] == "mine" and made_up == ["KEFU_NOTIFY_TOKEN"]
    assert "KEFU_AGENT_TOKEN" not in _with_secrets(kept_file)[0]  # agents have own accounts


def test_the_keyed_hash_secret_is_kept_between_runs(tmp_path):
    # Order and client hashes must match last run's, or analytics loses earlier contacts.
    path = tmp_path / "var" / "hash-secret"
    first = _with_secrets({"KEFU_HASH_SECRET_FILE": str(path)})[0]["KEFU_HASH_SECRET"]
    assert len(first) >= 32 and path.stat().st_mode & 0o777 == 0o600
    again = _with_secrets({"KEFU_HASH_SECRET_FILE": str(path)})[0]["KEFU_HASH_SECRET"]
    assert again == first
    chosen = {"KEFU_HASH_SECRET": "operator's", "KEFU_HASH_SECRET_FILE": str(path)}
    assert _with_secrets(chosen)[0]["KEFU_HASH_SECRET"] == "operator's"
    # An operator's token secret is stable already: hashes keep using it, as in production.
    token = {"KEFU_CUSTOMER_TOKEN_SECRET": "stable", "KEFU_HASH_SECRET_FILE": str(path)}
    assert "KEFU_HASH_SECRET" not in _with_secrets(token)[0]


@pytest.mark.parametrize(
    "origins, expected",
    [
        (None, []),
        ("", []),
        (" , ", []),
        ("https://shop.example", ["--cors", "https://shop.example"]),
        (
            "https://shop.example, https://m.shop.example",
            ["--cors", "https://shop.example", "https://m.shop.example"],
        ),
    ],
)
def test_cors_is_limited_to_the_configured_origins(origins, expected):
    assert cors_arguments(origins) == expected


def test_rasa_run_reads_the_cors_origins_as_a_list():
    from rasa.cli.arguments.run import add_server_arguments

    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    parsed = parser.parse_args(cors_arguments("https://a.example,https://b.example"))
    assert parsed.cors == ["https://a.example", "https://b.example"]
    assert parser.parse_args([]).cors is None  # Rasa then allows no other origin


def test_every_process_runs_numpy_on_one_blas_thread_unless_told_otherwise():
    env = process_env({"PATH": os.environ["PATH"]})
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["PYTHONPATH"] == str(ROOT)
    assert process_env({"OPENBLAS_NUM_THREADS": "4"})["OPENBLAS_NUM_THREADS"] == "4"
    probe = (
        "import numpy; from threadpoolctl import threadpool_info; "
        "print(sorted({i['num_threads'] for i in threadpool_info() if i['internal_api'] == 'openblas'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[1]"


def test_sanic_reads_the_request_size_limit_from_the_environment():
    env = server_env({"PATH": os.environ["PATH"]})
    assert env["SANIC_REQUEST_MAX_SIZE"] == str(1024 * 1024)
    assert server_env({"SANIC_REQUEST_MAX_SIZE": "5000"})["SANIC_REQUEST_MAX_SIZE"] == "5000"
    # What `rasa run` does: Sanic("rasa_server") reads SANIC_* when the app is made.
    probe = "from sanic import Sanic; print(Sanic('probe').config.REQUEST_MAX_SIZE)"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(1024 * 1024)


SANIC_APP = """
import sys
from sanic import Sanic, response

app = Sanic("probe")


@app.post("/")
async def echo(request):
    return response.json({"bytes": len(request.body)})


app.run(host="127.0.0.1", port=int(sys.argv[1]), access_log=False)
"""


def test_a_body_over_the_limit_is_refused_before_it_is_sent():
    port = free_port()
    env = server_env({"PATH": os.environ["PATH"]})
    server = subprocess.Popen([sys.executable, "-c", SANIC_APP, str(port)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not service_reachable("127.0.0.1", port, timeout=0.2):
            assert time.monotonic() < deadline and server.poll() is None, "Sanic did not start"
            time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            # Headers announcing 2 MiB; not one byte of the body follows.
            conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 413")
    finally:
        server.terminate()
        server.wait(timeout=30)


ARGS = argparse.Namespace(host="127.0.0.1", port=5005, actions_port=5055, log_dir="var/log")
DEMO_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"


def test_the_banner_names_where_secrets_are_and_prints_none():
    env = {"KEFU_CUSTOMER_TOKEN_SECRET": "s3cr3t-value-of-the-run", "KEFU_AGENT_TOKEN": "old"}
    text = banner(ARGS, env, ["KEFU_CUSTOMER_TOKEN_SECRET"], demo_token=None, agent_ready=True)
    assert "s3cr3t-value-of-the-run" not in text and "old" not in text
    assert "KEFU_CUSTOMER_TOKEN_SECRET" in text  # named, so the user knows to set it
    assert "sign in as 'demo', token in var/agent-token" in text
    custom = banner(
        ARGS, {"KEFU_AGENT_TOKEN_FILE": "/tmp/t"}, [], demo_token=None, agent_ready=True
    )
    assert "token in /tmp/t" in custom
    failed = banner(ARGS, {}, [], demo_token=None, agent_ready=False)
    assert "python -m commerce agent add NAME" in failed
    assert "Cross-origin callers:  none (same origin only)" in failed


def test_the_demo_customer_link_goes_to_a_private_file_and_can_be_turned_off(tmp_path):
    link_file = tmp_path / "demo-link"
    env = {"KEFU_DEMO_LINK_FILE": str(link_file)}
    text = banner(ARGS, env, [], demo_token=DEMO_TOKEN, agent_ready=True)
    assert DEMO_TOKEN not in text
    assert f"Demo customer (alice@example.com), signed in: open the link in {link_file}" in text
    assert link_file.read_text().strip().endswith(f"/webhooks/webchat/#token={DEMO_TOKEN}")
    assert link_file.stat().st_mode & 0o777 == 0o600
    link_file.unlink()
    off = banner(ARGS, {**env, "KEFU_DEMO_LINKS": "0"}, [], demo_token=DEMO_TOKEN, agent_ready=True)
    assert DEMO_TOKEN not in off and "Demo customer" not in off and not link_file.exists()


def test_rasa_runs_without_wildcard_cors():
    args = argparse.Namespace(**vars(ARGS), credentials="credentials.yml")
    command = rasa_run_command(args, ROOT / "models/kefu.tar.gz", ROOT / "endpoints.yml", {})
    assert "--cors" not in command and "*" not in command
    env = {"KEFU_CORS_ORIGINS": "https://shop.example"}
    command = rasa_run_command(args, ROOT / "models/kefu.tar.gz", ROOT / "endpoints.yml", env)
    assert command[-2:] == ["--cors", "https://shop.example"]


# --- the analytics consumer ----------------------------------------------------------------


def test_the_consumer_follows_the_effective_endpoints_until_stopped(tmp_path):
    from analytics.__main__ import parser

    effective = endpoints_for_port(ROOT / "endpoints.yml", 6123, tmp_path)
    upgrade, consume = analytics_commands(effective)
    assert upgrade[1:] == ["-m", "analytics", "upgrade"]
    assert consume[1:3] == ["-m", "analytics"]
    parsed = parser().parse_args(consume[3:])
    assert parsed.func.__name__ == "cmd_consume" and parsed.from_tracker_store
    assert parsed.endpoints == str(effective) and effective.name == "endpoints.6123.yml"
    assert not parsed.once and parsed.max_seconds is None  # polls until stopped


def _args(*argv: str) -> argparse.Namespace:
    return _parse_args(["--endpoints", "endpoints.yml", *argv])


def test_analytics_runs_next_to_an_sql_tracker_store_unless_turned_off(tmp_path):
    default = ROOT / "endpoints.yml"  # channels.tracker_store.MaskingSQLTrackerStore on SQLite
    assert analytics_off(_args(), {}, default) is None
    assert analytics_off(_args(), {"KEFU_ANALYTICS": "1"}, default) is None
    assert analytics_off(_args("--no-analytics"), {}, default) == "--no-analytics"
    assert analytics_off(_args(), {"KEFU_ANALYTICS": "0"}, default) == "KEFU_ANALYTICS=0"
    assert analytics_off(_args("--shell"), {}, default) == "--shell"
    plain_sql = tmp_path / "sql.yml"
    plain_sql.write_text("tracker_store:\n  type: SQL\n  url: ${KEFU_TRACKER_DB_URL}\n")
    assert analytics_off(_args(), {}, plain_sql) is None
    redis = tmp_path / "redis.yml"
    redis.write_text("tracker_store:\n  type: redis\n  url: localhost\n")
    none = tmp_path / "none.yml"
    none.write_text("action_endpoint:\n  url: http://localhost:5055/webhook\n")
    for endpoints in (redis, none):
        assert analytics_off(_args(), {}, endpoints) == "the tracker store is not SQL"


def test_the_banner_lists_the_consumer_and_its_log_or_why_it_is_off():
    on = banner(ARGS, {}, [], demo_token=None, agent_ready=True, analytics_off=None)
    assert "Analytics consumer:    following the tracker store" in on
    assert "var/log/rasa.log, var/log/actions.log, var/log/notify.log, var/log/analytics.log" in on
    off = banner(ARGS, {}, [], demo_token=None, agent_ready=True, analytics_off="--no-analytics")
    assert "Analytics consumer:    off (--no-analytics)" in off
    assert "analytics.log" not in off


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_service_without_a_health_url_is_healthy_while_it_runs(tmp_path):
    sleeper = Service("sleeper", _python("import time; time.sleep(60)"), None, tmp_path)
    sleeper.start(dict(os.environ))
    try:
        started = time.monotonic()
        sleeper.wait_healthy(started + 30)
        assert time.monotonic() - started < 5 and not sleeper.exited()
    finally:
        sleeper.stop()
    assert sleeper.exited()
    failing = Service("failing", _python("print('boom'); raise SystemExit(3)"), None, tmp_path)
    failing.start(dict(os.environ))
    failing.process.wait(timeout=30)
    with pytest.raises(ServiceFailed, match="failing exited with code 3") as failed:
        failing.wait_healthy(time.monotonic() + 30)
    assert "boom" in str(failed.value)  # the tail of tmp_path/failing.log


def test_a_stopped_consumer_is_reported_and_the_servers_keep_running(tmp_path, capsys):
    server = Service("server", _python("import time; time.sleep(60)"), None, tmp_path)
    consumer = Service("analytics", _python("raise SystemExit('db gone')"), None, tmp_path)
    server.start(dict(os.environ))
    consumer.start(dict(os.environ))
    try:
        consumer.process.wait(timeout=30)
        assert check_services([server], [consumer]) == []
        warning = capsys.readouterr().err
        assert "analytics stopped (code 1); the chat keeps running" in warning
        assert "db gone" in warning
        assert not server.exited()
        assert check_services([server], []) == []  # reported once, then forgotten
        assert capsys.readouterr().err == ""
    finally:
        server.stop()
    with pytest.raises(ServiceFailed, match="server stopped unexpectedly"):
        check_services([server], [])


def test_a_failed_upgrade_is_logged_and_leaves_analytics_out(tmp_path, capsys):
    log = tmp_path / "analytics.log"
    assert not upgrade_analytics(_python("raise SystemExit('no database')"), {}, log)
    assert "no analytics this run: the upgrade failed (code 1)" in capsys.readouterr().err
    assert "no database" in log.read_text()


def _save_conversation(store, sender: str) -> None:
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    tracker = DialogueStateTracker.from_events(
        sender,
        [
            ActionExecuted("action_listen"),
            UserUttered("hello", intent={"name": "greet", "confidence": 0.99}),
            ActionExecuted("utter_greet"),
        ],
    )
    asyncio.run(store.save(tracker))


def _analytics_senders(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(
                conn.execute(sa.text("SELECT DISTINCT sender_id FROM analytics_events")).scalars()
            )
    finally:
        engine.dispose()


def _wait_for(condition, consumer: Service, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert not consumer.exited(), f"the consumer stopped:\n{consumer.log_path.read_text()}"
        assert time.monotonic() < deadline, "the consumer did not read the events in time"
        time.sleep(0.5)


def test_the_consumer_as_serve_starts_it_keeps_reading_new_conversations(tmp_path):
    from rasa.shared.core.domain import Domain

    from channels.tracker_store import MaskingSQLTrackerStore

    # What `rasa run` does before serve.py starts the consumer: make the tracker store.
    store = MaskingSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(tmp_path / "t.db"))
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        "tracker_store:\n  type: channels.tracker_store.MaskingSQLTrackerStore\n"
        f"  dialect: sqlite\n  db: {tmp_path / 't.db'}\n"
    )
    url = f"sqlite:///{tmp_path / 'analytics.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEFU_ANALYTICS_DATABASE_URL": url}
    upgrade, consume = analytics_commands(endpoints)
    assert upgrade_analytics(upgrade, env, tmp_path / "analytics.log")
    consumer = Service("analytics", consume, None, tmp_path)
    consumer.start(env)
    try:
        consumer.wait_healthy(time.monotonic() + 30)
        _save_conversation(store, "first")
        _wait_for(lambda: _analytics_senders(url) == {"first"}, consumer)
        # Caught up, it keeps polling: a conversation saved later is read too.
        _save_conversation(store, "second")
        _wait_for(lambda: _analytics_senders(url) == {"first", "second"}, consumer)
        assert not consumer.exited()
    finally:
        consumer.stop()
        store.engine.dispose()
    assert consumer.exited()
