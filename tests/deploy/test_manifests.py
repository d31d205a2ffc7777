"""The container manifests (deploy/compose.yml, deploy/k8s/, deploy/Dockerfile) agree with the
topology that runs here (deploy/cluster.yml) and with the endpoints every replica loads
(deploy/endpoints.production.yml): images, ports, replicas, environment, probes, resources.
No container runtime is needed: the files are parsed, not run."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
READY_PATH = "/webhooks/health/ready"
#: Secrets: in the manifests as references to be filled in, never as values.
SECRETS = {
    "KEFU_ACTION_TOKEN",
    "KEFU_RABBITMQ_PASSWORD",
    "KEFU_CUSTOMER_TOKEN_SECRET",
    "KEFU_HASH_SECRET",
    "KEFU_NOTIFY_TOKEN",
}
#: The proactive-notice worker (commerce/notify.py), the same command in every shape.
NOTIFY_COMMAND = ["python", "-m", "commerce", "notify"]
#: The replicas' live-push route (channels/notices.py), which the worker posts to.
LIVE_PATH = "/webhooks/live/notify"
#: What the worker shares with the replicas: the route's bearer token and the commerce database.
SHARED_WITH_REPLICAS = ("KEFU_NOTIFY_TOKEN", "KEFU_DATABASE_URL")


def load(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cluster() -> dict:
    return load(DEPLOY / "cluster.yml")


@pytest.fixture(scope="module")
def endpoint_vars() -> set[str]:
    """Every ${VAR} the production endpoints read."""
    text = (DEPLOY / "endpoints.production.yml").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{(\w+)\}", body))


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(DEPLOY / "compose.yml")


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict]:
    """Every Kubernetes object of deploy/k8s, by (kind, name)."""
    objects = {}
    for path in sorted(K8S.glob("*.yml")):
        if path.name == "kustomization.yml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def arg_after(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", "\n".join(x for x in text.splitlines() if not x.startswith("#")))
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line.strip()]


def image_command() -> list[str]:
    [cmd] = [args for op, args in dockerfile() if op == "CMD"]
    return yaml.safe_load(cmd)  # the JSON form


def container(deployment: dict) -> dict:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def live_urls(value: str) -> list[str]:
    """``KEFU_NOTIFY_LIVE_URL``'s URLs (comma-separated, as commerce.notify reads it)."""
    return [url.strip() for url in value.split(",") if url.strip()]


# --- the image --------------------------------------------------------------------------------


def test_the_image_copies_only_what_exists_and_serves_rasa_on_the_replica_port(cluster):
    for op, args in dockerfile():
        if op == "COPY":
            *sources, _ = args.split()
            for source in sources:
                if source != "models/kefu.tar.gz":  # trained by `make train` before the build
                    assert (ROOT / source).exists(), f"COPY {source}: no such path"
    command = image_command()
    assert command[:2] == ["rasa", "run"]
    assert int(arg_after(command, "--port")) == cluster["rasa"]["first_port"]
    assert arg_after(command, "--model") == cluster["rasa"]["model"]
    assert arg_after(command, "--endpoints") == "deploy/endpoints.production.yml"
    assert arg_after(command, "--credentials") == "deploy/credentials.cluster.yml"
    exposed = {int(p) for op, args in dockerfile() if op == "EXPOSE" for p in args.split()}
    assert exposed == {cluster["rasa"]["first_port"], cluster["actions"]["first_port"]}
    assert any(op == "USER" and args.strip() != "root" for op, args in dockerfile())


def test_the_image_runs_numpy_on_as_many_blas_threads_as_a_local_run():
    from scripts.serve import BLAS_THREADS_ENV

    env = " ".join(args for op, args in dockerfile() if op == "ENV").split()
    for name, value in BLAS_THREADS_ENV.items():
        assert f"{name}={value}" in env


# --- Compose ----------------------------------------------------------------------------------


def test_compose_builds_one_image_for_rasa_actions_the_migration_and_the_notices(compose):
    kefu = ("rasa", "actions", "migrate", "notify")
    images = {compose["services"][s]["image"] for s in kefu}
    assert images == {"kefu:3.6"}
    for name in kefu:
        build = compose["services"][name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"


def test_compose_replicas_ports_and_memory_follow_the_cluster(compose, cluster):
    rasa, actions = compose["services"]["rasa"], compose["services"]["actions"]
    assert rasa["deploy"]["replicas"] == cluster["rasa"]["replicas"]
    assert actions["deploy"]["replicas"] == cluster["actions"]["replicas"]
    assert rasa["expose"] == [str(cluster["rasa"]["first_port"])]
    assert actions["expose"] == [str(cluster["actions"]["first_port"])]
    assert int(arg_after(actions["command"], "--port")) == cluster["actions"]["first_port"]
    assert "command" not in rasa  # the image's: rasa run on the replica port
    if "memory_gib" in cluster["rasa"]:
        memory = rasa["deploy"]["resources"]["limits"]["memory"]
        assert memory == f"{cluster['rasa']['memory_gib']}G"
    balancer = compose["services"]["nginx"]
    assert balancer["ports"] == [f"{cluster['balancer']['port']}:{cluster['balancer']['port']}"]


def test_compose_balancer_routes_like_the_local_one(compose, cluster):
    conf = compose["configs"]["nginx_conf"]["content"].replace("$$", "$")
    assert f"listen {cluster['balancer']['port']};" in conf
    if "actions_port" in cluster["balancer"]:
        assert f"listen {cluster['balancer']['actions_port']};" in conf
    assert f"server rasa:{cluster['rasa']['first_port']} " in conf
    assert f"server actions:{cluster['actions']['first_port']} " in conf
    # socket.io sticky on the cookie the local template uses
    template = (DEPLOY / "nginx.conf.template").read_text(encoding="utf-8")
    assert "$cookie_kefu_route" in template and "$cookie_kefu_route" in conf
    assert re.search(r"upstream kefu_socketio \{ hash \$kefu_route consistent;", conf)
    assert f"proxy_read_timeout {cluster['balancer'].get('turn_timeout_s', 60)}s;" in conf


def test_compose_environment_sets_every_endpoint_variable(compose, endpoint_vars, cluster):
    env = compose["x-kefu-env"]
    assert endpoint_vars <= set(env), endpoint_vars - set(env)
    for name in ("rasa", "actions", "migrate"):
        assert compose["services"][name]["environment"] == env
    for secret in SECRETS:
        assert re.fullmatch(r"\$\{" + secret + r":\?[^}]+\}", env[secret]), secret
    assert env["KEFU_SOCKETIO_REDIS_URL"].endswith(f"/{cluster['redis']['socketio_db']}")
    if "actions_port" in cluster["balancer"]:
        assert env["KEFU_ACTION_URL"] == (
            f"http://nginx:{cluster['balancer']['actions_port']}/webhook"
        )


def test_compose_health_checks_probe_the_readiness_routes(compose, cluster):
    rasa_check = " ".join(compose["services"]["rasa"]["healthcheck"]["test"])
    assert f"127.0.0.1:{cluster['rasa']['first_port']}{READY_PATH}" in rasa_check
    actions_check = " ".join(compose["services"]["actions"]["healthcheck"]["test"])
    assert f"127.0.0.1:{cluster['actions']['first_port']}/health" in actions_check


def test_compose_runs_one_notice_worker_with_the_replicas_environment(compose):
    workers = [n for n, s in compose["services"].items() if s.get("command") == NOTIFY_COMMAND]
    assert workers == ["notify"]
    worker = compose["services"]["notify"]
    assert worker["deploy"].get("replicas", 1) == 1
    replicas = compose["services"]["rasa"]["environment"]
    env = worker["environment"]
    assert {name: env[name] for name in replicas} == replicas  # the same anchor, nothing changed
    assert set(SHARED_WITH_REPLICAS) <= set(replicas)
    assert set(env) - set(replicas) == {"KEFU_NOTIFY_LIVE_URL"}
    assert {"migrate", "rasa"} <= set(worker["depends_on"])


def test_compose_notice_worker_asks_every_rasa_replica_not_the_balancer(compose, cluster):
    [url] = live_urls(compose["services"]["notify"]["environment"]["KEFU_NOTIFY_LIVE_URL"])
    parts = urlsplit(url)
    # dns+http: every address Docker's DNS gives the service, i.e. each of its replicas
    assert parts.scheme == "dns+http"
    assert parts.hostname == "rasa" and "replicas" in compose["services"]["rasa"]["deploy"]
    assert parts.port == cluster["rasa"]["first_port"]
    assert parts.path == LIVE_PATH


# --- Kubernetes -------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_and_names_the_compose_image(compose):
    kustomization = load(K8S / "kustomization.yml")
    manifests = {p.name for p in K8S.glob("*.yml")} - {"kustomization.yml"}
    assert set(kustomization["resources"]) == manifests
    [image] = kustomization["images"]
    assert f"{image['name']}:{image['newTag']}" == compose["services"]["rasa"]["image"]


def test_k8s_deployments_follow_the_cluster(k8s, cluster):
    for name, section in (("kefu-rasa", "rasa"), ("kefu-actions", "actions")):
        deployment = k8s[("Deployment", name)]
        assert deployment["spec"]["replicas"] == cluster[section]["replicas"]
        box = container(deployment)
        assert box["image"] == "kefu"  # kustomization pins the tag
        [port] = box["ports"]
        assert port["containerPort"] == cluster[section]["first_port"]
        assert int(arg_after(box["command"], "--port")) == port["containerPort"]
        service = k8s[("Service", name)]
        [service_port] = service["spec"]["ports"]
        assert service_port["port"] == port["containerPort"]
        assert service_port["targetPort"] == port["name"]
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    rasa = container(k8s[("Deployment", "kefu-rasa")])
    assert rasa["command"] == image_command()
    assert arg_after(rasa["command"], "--model") == cluster["rasa"]["model"]


def test_k8s_probes_use_the_readiness_route_and_liveness_root(k8s):
    rasa = container(k8s[("Deployment", "kefu-rasa")])
    assert rasa["readinessProbe"]["httpGet"] == {"path": READY_PATH, "port": "http"}
    assert rasa["livenessProbe"]["httpGet"] == {"path": "/", "port": "http"}
    assert rasa["startupProbe"]["httpGet"]["path"] == "/"
    actions = container(k8s[("Deployment", "kefu-actions")])
    for probe in ("readinessProbe", "livenessProbe"):
        assert actions[probe]["httpGet"] == {"path": "/health", "port": "http"}


def test_every_container_has_requests_and_limits(k8s, cluster):
    for (kind, name), obj in k8s.items():
        if kind in ("Deployment", "Job"):
            for box in obj["spec"]["template"]["spec"]["containers"]:
                resources = box["resources"]
                assert {"cpu", "memory"} <= set(resources["requests"]), name
                assert {"cpu", "memory"} <= set(resources["limits"]), name
    rasa = container(k8s[("Deployment", "kefu-rasa")])["resources"]
    if "memory_gib" in cluster["rasa"]:
        gib = f"{cluster['rasa']['memory_gib']}Gi"
        assert rasa["requests"]["memory"] == rasa["limits"]["memory"] == gib


def test_k8s_environment_sets_every_endpoint_variable_and_the_same_names_as_compose(
    k8s, compose, endpoint_vars
):
    config = k8s[("ConfigMap", "kefu-config")]["data"]
    secret = k8s[("Secret", "kefu-secrets")]["stringData"]
    assert not set(config) & set(secret), "a name set twice"
    names = set(config) | set(secret)
    assert endpoint_vars <= names, endpoint_vars - names
    assert names == set(compose["x-kefu-env"])
    assert SECRETS <= set(secret)
    assert all(value == "" for value in secret.values()), "no secret value in the repository"
    for (kind, name), obj in k8s.items():
        if kind in ("Deployment", "Job"):
            for box in obj["spec"]["template"]["spec"]["containers"]:
                refs = {next(iter(r.values()))["name"] for r in box["envFrom"]}
                assert refs == {"kefu-config", "kefu-secrets"}, name


def test_k8s_action_url_reaches_the_action_service(k8s, cluster):
    url = k8s[("ConfigMap", "kefu-config")]["data"]["KEFU_ACTION_URL"]
    assert url == f"http://kefu-actions:{cluster['actions']['first_port']}/webhook"


def test_socketio_is_sticky_on_the_cluster_cookie_and_rest_is_not(k8s):
    credentials = load(DEPLOY / "credentials.cluster.yml")
    socketio_path = credentials["channels.webchat.WebChatInput"]["socketio_path"]
    sticky = k8s[("Ingress", "kefu-socketio")]
    notes = sticky["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert notes["nginx.ingress.kubernetes.io/session-cookie-name"] == "kefu_route"
    [rule] = sticky["spec"]["rules"]
    [path] = rule["http"]["paths"]
    assert path["path"] == socketio_path
    assert path["backend"]["service"]["name"] == "kefu-rasa"
    plain = k8s[("Ingress", "kefu-rasa")]["metadata"]["annotations"]
    assert "nginx.ingress.kubernetes.io/affinity" not in plain


def test_k8s_runs_one_notice_worker_that_never_overlaps_itself(k8s):
    workers = [
        key
        for key, obj in k8s.items()
        if key[0] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
        and any(
            box.get("command") == NOTIFY_COMMAND
            for box in obj["spec"]["template"]["spec"]["containers"]
        )
    ]
    assert workers == [("Deployment", "kefu-notify")]
    worker = k8s[("Deployment", "kefu-notify")]
    assert worker["spec"]["replicas"] == 1
    assert worker["spec"]["strategy"] == {"type": "Recreate"}  # a rollout never runs two
    assert "notify.yml" in load(K8S / "kustomization.yml")["resources"]


def test_k8s_notice_worker_has_the_replicas_token_and_database(k8s):
    worker = container(k8s[("Deployment", "kefu-notify")])
    rasa = container(k8s[("Deployment", "kefu-rasa")])
    assert worker["envFrom"] == rasa["envFrom"]
    secret = k8s[("Secret", "kefu-secrets")]["stringData"]
    assert set(SHARED_WITH_REPLICAS) <= set(secret)
    replicas_own = rasa.get("env", [])
    assert all(item in worker["env"] for item in replicas_own)
    own = {item["name"] for item in worker["env"] if item not in replicas_own}
    assert own == {"KEFU_NOTIFY_LIVE_URL"}  # nothing the replicas get is set otherwise


def test_k8s_notice_worker_resolves_every_ready_rasa_pod(k8s, cluster):
    worker = container(k8s[("Deployment", "kefu-notify")])
    env = {item["name"]: item["value"] for item in worker["env"]}
    [url] = live_urls(env["KEFU_NOTIFY_LIVE_URL"])
    parts = urlsplit(url)
    assert parts.scheme == "dns+http" and parts.path == LIVE_PATH
    assert parts.hostname != "kefu-rasa"  # the balancing Service would ask one pod at random
    headless = k8s[("Service", parts.hostname)]["spec"]
    assert headless["clusterIP"] == "None"  # one A record per pod
    assert not headless.get("publishNotReadyAddresses")
    rasa = k8s[("Deployment", "kefu-rasa")]
    assert headless["selector"] == rasa["spec"]["selector"]["matchLabels"]
    [port] = headless["ports"]
    [rasa_port] = container(rasa)["ports"]
    assert port["port"] == parts.port == rasa_port["containerPort"] == cluster["rasa"]["first_port"]
    assert port["targetPort"] == rasa_port["name"]


# --- the local cluster's own environment ------------------------------------------------------


def test_every_setting_the_local_cluster_gives_its_processes_is_set_in_the_manifests(
    compose, cluster, tmp_path
):
    """scripts/cluster.py's environment for a replica, less what only a local run has."""
    launcher = pytest.importorskip("scripts.cluster")
    if not hasattr(launcher, "cluster_env"):
        pytest.skip("scripts/cluster.py has no cluster_env() to compare with")
    given = {
        "KEFU_ACTION_TOKEN": "t",
        "KEFU_CUSTOMER_TOKEN_SECRET": "c",
        "KEFU_HASH_SECRET": "h",
        "KEFU_HASH_SECRET_FILE": str(tmp_path / "hash-secret"),
    }
    env = launcher.cluster_env(cluster, given, tmp_path)
    local_only = {"KEFU_AGENT_TOKEN_FILE", "KEFU_HASH_SECRET_FILE"}  # files of this machine
    kefu = {n for n in env if n.startswith("KEFU_")} - local_only
    missing = kefu - set(compose["x-kefu-env"])
    assert not missing, f"the cluster sets {sorted(missing)}; the manifests do not"


def test_the_local_cluster_runs_one_notice_worker_asking_each_replica_directly(cluster, tmp_path):
    """scripts/cluster.py: one worker, started after the servers, with the replicas' token and
    database, posting to every replica's own loopback port (never the balancer's)."""
    launcher = pytest.importorskip("scripts.cluster")
    if not hasattr(launcher, "notice_worker"):
        pytest.skip("scripts/cluster.py runs no notice worker")
    from scripts.serve import server_env

    given = {"KEFU_HASH_SECRET": "h", "KEFU_HASH_SECRET_FILE": str(tmp_path / "hash-secret")}
    env = launcher.cluster_env(cluster, given, tmp_path)
    servers = launcher.planned_services(cluster, "nginx", env)
    assert all(box.command[-3:] != NOTIFY_COMMAND[-3:] for box, _, _ in servers)
    assert launcher.notice_worker(cluster).command[-3:] == NOTIFY_COMMAND[-3:]
    worker, replica = launcher.notify_env(cluster, env), server_env(env)
    for name in SHARED_WITH_REPLICAS:
        assert worker[name] == replica[name], name
    assert worker["KEFU_DATABASE_URL"] == cluster["commerce_db"]["url"]
    urls = [urlsplit(url) for url in live_urls(worker["KEFU_NOTIFY_LIVE_URL"])]
    assert [(u.scheme, u.hostname, u.path) for u in urls] == [
        ("http", "127.0.0.1", LIVE_PATH)
    ] * cluster["rasa"]["replicas"]
    assert [u.port for u in urls] == launcher.rasa_ports(cluster)
