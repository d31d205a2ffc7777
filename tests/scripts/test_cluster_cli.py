"""scripts/cluster.py without Rasa: the config and its overrides, the nginx file it renders, the
environment the replicas and the notice worker get, and how it records, reports and stops its
processes."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
import yaml

import scripts.cluster as launcher
from scripts.cluster import (
    NOTIFY_PATH,
    STOP_ORDER,
    ClusterError,
    action_ports,
    alive,
    check_can_start,
    check_endpoints_agree,
    cluster_env,
    down,
    last_answer,
    load_config,
    memory_needed_gib,
    notice_worker,
    notify_env,
    pids_path,
    process_record,
    rasa_ports,
    read_state,
    render_nginx,
    state_dirs,
    status,
    stop_processes,
    write_state,
)
from scripts.serve import Service, server_env
from tests.helpers import ROOT
from tests.helpers.network import free_port, service_reachable

ENDPOINTS = ROOT / "deploy" / "endpoints.production.yml"


def config_for(tmp_path, **overrides: str) -> dict:
    """The committed config with its state under ``tmp_path`` and ``KEFU_CLUSTER_*`` overrides
    given without the prefix (``RASA_REPLICAS="4"``)."""
    environ = {
        "KEFU_CLUSTER_FILES_RUN_DIR": str(tmp_path / "run"),
        "KEFU_CLUSTER_FILES_LOG_DIR": str(tmp_path / "log"),
        **{f"KEFU_CLUSTER_{name}": value for name, value in overrides.items()},
    }
    config = load_config(environ=environ)
    for folder in state_dirs(config):
        folder.mkdir(parents=True, exist_ok=True)
    return config


def upstreams(conf: str) -> dict[str, list[str]]:
    """``upstream name { server a; ... }`` → ``{name: [a, ...]}``."""
    return {
        name: re.findall(r"^\s*server\s+(\S+)", body, re.M)
        for name, body in re.findall(r"upstream\s+(\w+)\s*\{(.*?)\}", conf, re.S)
    }


# --- the config --------------------------------------------------------------------------------


def test_the_committed_topology_two_replicas_of_each_on_consecutive_ports():
    config = load_config(environ={})
    assert rasa_ports(config) == [5105, 5106]
    assert action_ports(config) == [5155, 5156]
    assert config["tracker_store"]["url"].endswith("/kefu_cluster_tracker")


def test_an_environment_variable_overrides_one_value_for_one_run():
    config = load_config(
        environ={
            "KEFU_CLUSTER_RASA_REPLICAS": "4",
            "KEFU_CLUSTER_TRACKER_STORE_URL": "postgresql://kefu@127.0.0.1:5432/other",
            "UNRELATED": "x",
        }
    )
    assert rasa_ports(config) == [5105, 5106, 5107, 5108]
    assert config["tracker_store"]["url"] == "postgresql://kefu@127.0.0.1:5432/other"
    assert load_config(environ={})["rasa"]["replicas"] == 2  # the file itself is unchanged


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"KEFU_CLUSTER_RASA_REPLICA": "3"}, "did you mean KEFU_CLUSTER_RASA_REPLICAS"),
        ({"KEFU_CLUSTER_RASA_REPLICAS": "two"}, "expected a whole number"),
        ({"KEFU_CLUSTER_ACTIONS_REPLICAS": "0"}, "actions.replicas must be 1 or more"),
        ({"KEFU_CLUSTER_ACTIONS_FIRST_PORT": "5106"}, "port 5106 is given to both rasa-1"),
        ({"KEFU_CLUSTER_BALANCER_PORT": "80"}, "balancer's port 80 is outside"),
        ({"KEFU_CLUSTER_TRACKER_STORE_URL": "sqlite:///t.db"}, "must be a PostgreSQL URL"),
        ({"KEFU_CLUSTER_BALANCER_MAX_FAILS": "0"}, "balancer.max_fails must be 1 or more"),
    ],
)
def test_a_config_that_cannot_make_a_cluster_is_refused_with_what_to_change(environ, message):
    with pytest.raises(ClusterError, match=re.escape(message)):
        load_config(environ=environ)


def test_the_endpoints_file_and_the_config_agree_on_what_the_file_writes_itself(tmp_path):
    check_endpoints_agree(load_config(environ={}), ENDPOINTS)
    with pytest.raises(ClusterError, match="lock_store.db 1 != redis.lock_db"):
        check_endpoints_agree(load_config(environ={"KEFU_CLUSTER_REDIS_LOCK_DB": "3"}), ENDPOINTS)
    with pytest.raises(ClusterError, match="lacks rabbitmq.queue"):
        check_endpoints_agree(load_config(environ={"KEFU_CLUSTER_RABBITMQ_QUEUE": "x"}), ENDPOINTS)


def test_memory_needed_is_each_replica_plus_room_for_the_rest():
    # deploy/cluster.yml: 2 replicas of 2 GiB each, and 2 GiB for everything else.
    assert memory_needed_gib(load_config(environ={})) == 2 * 2 + 2
    assert memory_needed_gib(load_config(environ={"KEFU_CLUSTER_RASA_REPLICAS": "1"})) == 4


# --- the nginx file ----------------------------------------------------------------------------


def test_nginx_sends_each_kind_of_traffic_to_its_upstream(tmp_path):
    config = config_for(tmp_path, RASA_REPLICAS="3", BALANCER_PORT="9080")
    conf = render_nginx(config, *state_dirs(config))
    replicas = [f"127.0.0.1:{port}" for port in (5105, 5106, 5107)]
    assert upstreams(conf) == {
        "kefu_socketio": replicas,
        "kefu_rasa": replicas,
        "kefu_actions": ["127.0.0.1:5155", "127.0.0.1:5156"],
    }
    assert "listen 127.0.0.1:9080;" in conf
    assert "listen 127.0.0.1:8081;" in conf  # the action servers' balancer
    assert "hash $kefu_route consistent;" in conf  # socket.io sticks to a replica
    assert "proxy_next_upstream error timeout http_502 http_503;" in conf
    assert "non_idempotent" not in conf  # a POST that reached a replica is never sent twice
    assert "keepalive " not in conf  # so a POST to a killed server is refused, then moved
    assert "max_fails=1 fail_timeout=10s" in conf
    assert f"pid {tmp_path / 'run'}/nginx.pid;" in conf
    assert f"user {pwd.getpwuid(os.geteuid()).pw_name};" in conf  # the owner of its temp files
    assert "$request " not in conf and "$request_uri" not in conf  # the action token stays out


def test_nginx_accepts_the_rendered_file(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.skip("nginx is not installed (make run-cluster installs it)")
    config = config_for(tmp_path)
    run_dir, log_dir = state_dirs(config)
    (run_dir / "tmp").mkdir()
    conf = run_dir / "nginx.conf"
    conf.write_text(render_nginx(config, run_dir, log_dir))
    checked = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-p", f"{run_dir}/", "-e", str(log_dir / "e.log")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


# --- the environment of the processes ----------------------------------------------------------


@pytest.fixture
def environ(tmp_path):
    """A shell's environment without the secrets, the hash secret kept under ``tmp_path``."""
    return {"PATH": "/usr/bin:/bin", "KEFU_HASH_SECRET_FILE": str(tmp_path / "hash-secret")}


def test_every_variable_of_the_endpoints_file_is_set_for_the_replicas(tmp_path, environ):
    env = cluster_env(config_for(tmp_path), environ, tmp_path)
    used = set(re.findall(r"\$\{(\w+)\}", ENDPOINTS.read_text()))
    assert used <= set(env), used - set(env)
    assert env["KEFU_ACTION_URL"] == "http://127.0.0.1:8081/webhook"
    assert env["KEFU_DATABASE_URL"].endswith("/kefu_cluster_commerce")
    assert env["KEFU_SOCKETIO_REDIS_URL"] == "redis://127.0.0.1:6379/2"
    assert env["KEFU_TRUSTED_PROXIES"] == "127.0.0.1/32"


def test_rasa_reads_the_cluster_stores_from_the_endpoints_file(tmp_path, environ, monkeypatch):
    from rasa.core.utils import AvailableEndpoints

    config = config_for(tmp_path, TRACKER_STORE_URL="postgresql://kefu@db.internal:5432/t")
    for name, value in cluster_env(config, environ, tmp_path).items():
        monkeypatch.setenv(name, value)
    endpoints = AvailableEndpoints.read_endpoints(str(ENDPOINTS))
    assert endpoints.tracker_store.url == "postgresql://kefu@db.internal:5432/t"
    assert endpoints.lock_store.kwargs["db"] == config["redis"]["lock_db"]
    assert endpoints.event_broker.kwargs["queues"] == [config["rabbitmq"]["queue"]]
    assert endpoints.action.url == "http://127.0.0.1:8081/webhook"


def test_secrets_are_made_once_for_all_replicas_and_kept_when_given(tmp_path, environ):
    config = config_for(tmp_path)
    made = cluster_env(config, environ, tmp_path)
    assert len(made["KEFU_ACTION_TOKEN"]) >= 32
    assert made["KEFU_CUSTOMER_TOKEN_SECRET"]
    given = {**environ, "KEFU_ACTION_TOKEN": "mine", "KEFU_TRUSTED_PROXIES": "10.0.0.0/8"}
    kept = cluster_env(config, given, tmp_path)
    assert (kept["KEFU_ACTION_TOKEN"], kept["KEFU_TRUSTED_PROXIES"]) == ("mine", "10.0.0.0/8")


# --- recording, reporting and stopping the processes ------------------------------------------


@pytest.fixture
def started(tmp_path):
    """Start processes as ``up`` does (serve.py's Service, a session each) and record them."""
    services: list[Service] = []

    def start(name: str, role: str, script: str, ready_line: str | None = None) -> dict:
        command = [sys.executable, "-c", script]
        service = Service(name, command, None, tmp_path)
        service.start({"PATH": "/usr/bin:/bin"})
        services.append(service)
        deadline = time.monotonic() + 10
        while ready_line and ready_line not in service.log_path.read_text():
            assert time.monotonic() < deadline, service.log_path.read_text()
            time.sleep(0.05)
        return process_record(service, role, None)

    yield start
    for service in services:
        service.stop(timeout=2)


SLEEPER = "import time; print('READY', flush=True); time.sleep(60)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('READY', flush=True); time.sleep(60)"
)


def test_down_stops_every_recorded_process_and_forgets_them(tmp_path, started, capsys):
    config = config_for(tmp_path)
    records = [started("rasa-0", "rasa", SLEEPER), started("actions-0", "actions", SLEEPER)]
    write_state(state_dirs(config)[0], records, "http://127.0.0.1:1")
    assert all(alive(r) for r in records)

    assert down(config, stop_timeout=10) == 0

    assert not any(alive(r) for r in records)
    assert read_state(state_dirs(config)[0]) is None
    assert capsys.readouterr().out.splitlines() == ["rasa-0: stopped", "actions-0: stopped"]


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path, started):
    stubborn = started("nginx", "nginx", STUBBORN, ready_line="READY\n")
    began = time.monotonic()
    assert stop_processes([stubborn], timeout=0.5) == ["nginx: killed (no exit 0.5s after SIGTERM)"]
    assert not alive(stubborn)
    assert time.monotonic() - began < 5


def test_a_recycled_pid_is_never_signalled(tmp_path, started):
    other = started("rasa-0", "rasa", SLEEPER)
    recycled = {**other, "start_ticks": other["start_ticks"] + 1}  # same pid, another process
    assert stop_processes([recycled], timeout=1) == ["rasa-0: was not running"]
    assert alive(other)


def test_status_reports_each_process_and_fails_while_one_is_down(tmp_path, started, capsys):
    config = config_for(tmp_path)
    run_dir = state_dirs(config)[0]
    assert status(config) == 3  # nothing started
    running = started("actions-0", "actions", SLEEPER)
    gone = started("rasa-0", "rasa", SLEEPER)
    stop_processes([gone], timeout=5)
    write_state(run_dir, [running, gone], f"http://127.0.0.1:{free_port()}")
    capsys.readouterr()

    assert status(config) == 1

    lines = capsys.readouterr().out.splitlines()
    assert re.match(rf"actions-0\s+pid {running['pid']}\s.*running\s+ready", lines[0])
    assert re.match(r"rasa-0\s.*stopped", lines[1])
    assert "NOT ANSWERING" in lines[2]  # nothing behind the balancer's address
    assert yaml.safe_load(pids_path(run_dir).read_text())["processes"][0]["name"] == "actions-0"


# --- the notice worker ---------------------------------------------------------------------------


def test_the_notice_worker_asks_each_replica_on_its_own_port_with_the_replicas_secrets(
    tmp_path, environ
):
    config = config_for(tmp_path, RASA_REPLICAS="3", RASA_FIRST_PORT="6105")
    shell = {**environ, "KEFU_NOTIFY_LIVE_URL": "http://127.0.0.1:5005/webhooks/live/notify"}
    env = cluster_env(config, shell, tmp_path)
    worker, replica = notify_env(config, env), server_env(env)
    # Every replica directly, never the balancer, and never what the shell had (make run's).
    assert worker["KEFU_NOTIFY_LIVE_URL"].split(",") == [
        f"http://127.0.0.1:{port}/webhooks/live/notify" for port in (6105, 6106, 6107)
    ]
    # The token is made up for the run, once: the replicas check what the worker sends.
    assert len(worker["KEFU_NOTIFY_TOKEN"]) >= 32
    assert worker["KEFU_NOTIFY_TOKEN"] == replica["KEFU_NOTIFY_TOKEN"]
    assert worker["KEFU_DATABASE_URL"] == replica["KEFU_DATABASE_URL"]
    assert worker["KEFU_DATABASE_URL"] == config["commerce_db"]["url"]
    given = cluster_env(config, {**environ, "KEFU_NOTIFY_TOKEN": "mine"}, tmp_path)
    assert notify_env(config, given)["KEFU_NOTIFY_TOKEN"] == "mine"


def test_the_notice_route_is_the_one_every_replica_serves():
    from channels.notices import NoticeInput

    credentials = yaml.safe_load((ROOT / "deploy" / "credentials.cluster.yml").read_text())
    assert "channels.notices.NoticeInput" in credentials
    assert NOTIFY_PATH == f"/webhooks/{NoticeInput.name()}/notify"


def test_one_notice_worker_with_its_log_beside_the_others_and_stopped_first(tmp_path):
    config = config_for(tmp_path)
    worker = notice_worker(config)
    assert worker.command[1:] == ["-m", "commerce", "notify"]
    assert worker.log_path == state_dirs(config)[1] / "notify.log"
    assert worker.health_url is None  # no port: ready while it runs
    assert STOP_ORDER[0] == "notify"  # no notice pushed to a replica that is stopping


NOTICE_WORKER = (
    "import os, time; print(os.environ['KEFU_NOTIFY_LIVE_URL'], flush=True); time.sleep(60)"
)


def test_up_starts_the_notice_worker_once_the_servers_answer_and_down_stops_it(
    tmp_path, environ, monkeypatch, capsys
):
    """``up`` with sleepers standing in for nginx, Rasa and the action servers (no stores)."""
    config = config_for(tmp_path)
    run_dir, log_dir = state_dirs(config)
    steps: list[str] = []

    def servers(config, nginx, env):
        names = (("actions-0", "actions"), ("nginx", "nginx"), ("rasa-0", "rasa"))
        command = [sys.executable, "-c", SLEEPER]
        return [(Service(name, command, None, log_dir), role, None) for name, role in names]

    def worker(config):
        steps.append("worker planned")
        return Service("notify", [sys.executable, "-c", NOTICE_WORKER], None, log_dir)

    wait_ready = launcher._wait_ready

    def waited(record, url, log, deadline):
        steps.append(record["name"])
        wait_ready(record, url, log, deadline)

    fakes = {
        "check_can_start": lambda config: None,
        "ensure_nginx": lambda log: "/bin/true",  # so `nginx -t` passes
        "ensure_database": lambda url: None,
        "prepare_commerce": lambda env, log: None,
        "_demo_agent": lambda env: False,
        "healthy": lambda url: True,  # the balancer forwards
        "planned_services": servers,
        "notice_worker": worker,
        "_wait_ready": waited,
    }
    for name, fake in fakes.items():
        monkeypatch.setattr(launcher, name, fake)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KEFU_NOTIFY_LIVE_URL", raising=False)
    try:
        launcher.up(config, startup_timeout=30, stop_timeout=5)

        assert steps == ["actions-0", "nginx", "rasa-0", "nginx", "worker planned", "notify"]
        records = read_state(run_dir)["processes"]
        assert [(r["name"], r["role"], r["port"]) for r in records][-1] == (
            "notify",
            "notify",
            None,
        )
        log = log_dir / "notify.log"
        deadline = time.monotonic() + 10
        while NOTIFY_PATH not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert (
            "http://127.0.0.1:5105/webhooks/live/notify,http://127.0.0.1:5106/" in log.read_text()
        )
        capsys.readouterr()
        assert status(config) == 0
        assert re.search(r"^notify\s+pid \d+\s+port -\s+running", capsys.readouterr().out, re.M)
        stop_processes([records[-1]], timeout=5)
        assert status(config) == 1  # a cluster without its notice worker is not all there
        assert re.search(r"^notify\s.*stopped", capsys.readouterr().out, re.M)
    finally:
        down(config, stop_timeout=5)
    assert capsys.readouterr().out.splitlines()[0] == "notify: was not running"


def test_down_stops_the_notice_worker_before_the_servers(tmp_path, started, capsys):
    config = config_for(tmp_path)
    records = [started("rasa-0", "rasa", SLEEPER), started("notify", "notify", SLEEPER)]
    write_state(state_dirs(config)[0], records, "http://127.0.0.1:1")
    assert down(config, stop_timeout=10) == 0
    assert not any(alive(r) for r in records)
    assert capsys.readouterr().out.splitlines() == ["notify: stopped", "rasa-0: stopped"]


# --- what up checks before it starts anything -------------------------------------------------


def test_up_refuses_while_a_cluster_runs(tmp_path, started):
    config = config_for(tmp_path)
    write_state(state_dirs(config)[0], [started("rasa-0", "rasa", SLEEPER)], "http://x")
    with pytest.raises(ClusterError, match="already running"):
        check_can_start(config)


def test_up_refuses_without_a_trained_model(tmp_path):
    config = config_for(tmp_path, RASA_MODEL=str(tmp_path / "none.tar.gz"))
    with pytest.raises(ClusterError, match="no trained model .* `make train`"):
        check_can_start(config)


@pytest.fixture
def stores_up():
    for name, port in (("PostgreSQL", 5432), ("Redis", 6379), ("RabbitMQ", 5672)):
        if not service_reachable("127.0.0.1", port):
            pytest.skip(f"{name} is not reachable at 127.0.0.1:{port}")


def test_up_refuses_a_port_in_use_naming_it(tmp_path, stores_up):
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = config_for(tmp_path, RASA_MODEL=str(model), BALANCER_PORT=str(port))
        with pytest.raises(ClusterError, match=f"ports already in use: {port} \\(balancer\\)"):
            check_can_start(config)


def test_up_refuses_more_replicas_than_memory_holds(tmp_path, stores_up):
    model = tmp_path / "model.tar.gz"
    model.write_bytes(b"")
    config = config_for(
        tmp_path,
        RASA_MODEL=str(model),
        RASA_MEMORY_GIB="100000",
        BALANCER_PORT=str(free_port()),
        BALANCER_ACTIONS_PORT=str(free_port()),
        RASA_FIRST_PORT=str(free_port()),
        ACTIONS_FIRST_PORT=str(free_port()),
    )
    with pytest.raises(ClusterError, match="replicas need about 200002 GiB"):
        check_can_start(config)


def test_a_replica_that_never_gets_ready_is_reported_with_its_last_answer():
    import http.server
    import threading

    class NotReady(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server hook's name
            body = b'{"status": "not_ready", "checks": {"model": "not loaded"}}'
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotReady)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/webhooks/health/ready"
        assert last_answer(url) == '503 {"status": "not_ready", "checks": {"model": "not loaded"}}'
    finally:
        server.shutdown()
        server.server_close()
    assert last_answer(url).startswith("no answer")
