"""The agent console's API on a real Sanic app: per-agent tokens, the name taken from the
account (never from a header), only the assignee replies or hands back, audit, throttling.

The Rasa side is the real tracker store, lock store and response generator on Kefu's domain;
the commerce side a real SQLite database. The console inside the running server (with the web
chat and a browser) is exercised in tests/integration/test_web_channels.py.
"""

from __future__ import annotations

import ipaddress
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from rasa.core.lock_store import InMemoryLockStore
from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ConversationPaused, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sanic import Sanic

from channels.agent_console import AgentConsole
from channels.live import AGENT_KEY
from commerce.db import make_engine, make_session_factory
from commerce.models import Base
from commerce.services import agents, support
from commerce.services.identity import client_key
from tests.helpers import ROOT

CONVERSATION = "web-4f1c2a"
PREFIX = "/webhooks/agent"
PEER = "mockserver"  # the client address Sanic's ASGI test client reports


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(ROOT / "domain"))


@pytest.fixture
def factory(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'commerce.db'}")
    Base.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


class Processor:
    def __init__(self, tracker_store) -> None:
        self.tracker_store = tracker_store

    async def get_tracker(self, sender_id: str):
        return await self.tracker_store.get_or_create_tracker(sender_id)


@pytest.fixture
async def rasa(domain):
    """What the console uses of the Rasa agent, with a paused conversation waiting for a human."""
    store = InMemoryTrackerStore(domain)
    tracker = DialogueStateTracker.from_events(
        CONVERSATION,
        [
            SlotSet("language", "en"),
            UserUttered(
                "my parcel arrived crushed, I want a human",
                {"name": "human_handoff"},
                parse_data={"sentiment": {"label": "negative", "frustration": 0.65}},
            ),
            ConversationPaused(),
        ],
    )
    await store.save(tracker)
    return SimpleNamespace(
        tracker_store=store,
        lock_store=InMemoryLockStore(),
        processor=Processor(store),
        nlg=TemplatedNaturalLanguageGenerator(domain.responses),
    )


@pytest.fixture
def app(factory, rasa):
    app = Sanic(f"console_{uuid.uuid4().hex[:8]}")
    app.blueprint(AgentConsole(factory).blueprint(), url_prefix=PREFIX)
    app.ctx.agent = rasa
    return app


@pytest.fixture
def handoff(factory) -> int:
    view = support.conversation_handoff(
        factory, CONVERSATION, "wants a human", transcript="crushed parcel"
    )
    return view.handoff_id


@pytest.fixture
def tokens(factory) -> dict[str, str]:
    return {name: agents.create_agent(factory, name)[1] for name in ("Anna", "Bob")}


async def call(app, method: str, path: str, token: str | None, body=None, **headers):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    _, reply = await app.asgi_client.request(
        method, PREFIX + "/api" + path, json=body, headers=headers
    )
    return reply.status, reply.json, reply.headers


async def agent_messages(rasa) -> list[tuple[str, str | None]]:
    tracker = await rasa.tracker_store.retrieve(CONVERSATION)
    return [
        (e.text, (e.metadata or {}).get(AGENT_KEY)) for e in tracker.events if e.type_name == "bot"
    ]


async def test_me_names_the_account_whatever_the_header_says(app, tokens):
    status, me, _ = await call(app, "GET", "/me", tokens["Anna"], **{"X-Kefu-Agent": "Bob"})
    assert status == 200 and me["agent"] == "Anna"
    status, queue, _ = await call(app, "GET", "/queue", tokens["Bob"])
    assert status == 200 and queue["agent"] == "Bob"


async def test_the_page_is_served_without_a_token(app):
    _, page = await app.asgi_client.get(PREFIX + "/")
    assert page.status == 200 and "Your agent token" in page.text
    assert "Your name" not in page.text


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer wrong", "Basic QW5uYTp4"])
async def test_requests_without_a_valid_token_are_refused(app, tokens, header):
    headers = {"Authorization": header} if header else {}
    status, error, _ = await call(app, "GET", "/queue", None, **headers)
    assert (status, error["error"]) == (401, "unauthorised")
    assert "agent add" in error["message"]


async def test_a_forged_agent_header_does_not_change_who_claims(
    app, factory, rasa, tokens, handoff
):
    status, claimed, _ = await call(
        app, "POST", f"/handoffs/{handoff}/claim", tokens["Bob"], **{"X-Kefu-Agent": "Anna"}
    )
    assert status == 200 and claimed["handoff"]["assigned_to"] == "Bob"
    assert support.get_handoff(factory, handoff).assigned_to == "Bob"
    [joined] = await agent_messages(rasa)
    assert joined == ("Bob from our customer service team has joined the chat.", None)
    [audit] = agents.list_audit(factory, action="claim")
    assert (audit.agent_name, audit.handoff_id, audit.conversation_id) == (
        "Bob",
        handoff,
        CONVERSATION,
    )
    assert audit.client_key == client_key(PEER)


async def test_only_the_assignee_replies_and_hands_back(app, factory, rasa, tokens, handoff):
    reply = {"text": "I'm sorry, a new one is on its way."}
    # Nobody has it yet: nobody may reply.
    status, error, _ = await call(app, "POST", f"/handoffs/{handoff}/reply", tokens["Anna"], reply)
    assert (status, error["error"]) == (403, "not_assignee")
    assert (await call(app, "POST", f"/handoffs/{handoff}/claim", tokens["Anna"]))[0] == 200
    # Bob cannot take it over, nor speak or hand back for Anna, even calling himself Anna.
    assert (await call(app, "POST", f"/handoffs/{handoff}/claim", tokens["Bob"]))[0] == 409
    for action in ("reply", "handback"):
        status, error, _ = await call(
            app,
            "POST",
            f"/handoffs/{handoff}/{action}",
            tokens["Bob"],
            reply,
            **{"X-Kefu-Agent": "Anna"},
        )
        assert (status, error["error"]) == (403, "not_assignee")
    assert support.get_handoff(factory, handoff).status == "assigned"
    assert [(e.agent_name, e.detail) for e in agents.list_audit(factory, action="denied")] == [
        ("Bob", "handback"),
        ("Bob", "reply"),
        ("Anna", "reply"),
    ]

    status, sent, _ = await call(app, "POST", f"/handoffs/{handoff}/reply", tokens["Anna"], reply)
    assert status == 200 and sent["message"] == {
        "role": "agent",
        "text": reply["text"],
        "agent": "Anna",
    }
    assert (await call(app, "POST", f"/handoffs/{handoff}/handback", tokens["Anna"]))[0] == 200
    assert support.get_handoff(factory, handoff).status == "closed"
    assert (await agent_messages(rasa))[1:] == [
        (reply["text"], "Anna"),
        (
            "You're back with Kefu, the shop assistant. Is there anything else I can help with?",
            None,
        ),
        ("How satisfied are you with my help? (1 = not at all, 5 = very)", None),
    ]
    # The next message is predicted as after any bot turn, and a rating answers the survey.
    tracker = await rasa.tracker_store.retrieve(CONVERSATION)
    assert tracker.latest_action_name == "action_listen" and not tracker.is_paused()
    assert tracker.get_slot("survey_pending") == f"agent:{handoff}"
    trail = [
        (e.agent_name, e.action, e.detail)
        for e in agents.list_audit(factory, handoff_id=handoff)
        if e.action != "denied"
    ]
    assert trail == [
        ("Anna", "handback", None),
        ("Anna", "reply", f"{len(reply['text'])} chars"),
        ("Anna", "claim", None),
    ]
    # Handed back: not even Anna can reply any more.
    status, error, _ = await call(app, "POST", f"/handoffs/{handoff}/reply", tokens["Anna"], reply)
    assert (status, error["error"]) == (409, "closed")


async def test_wrong_tokens_are_throttled_per_client(app, factory, tokens, monkeypatch):
    monkeypatch.setattr(agents, "MAX_LOGIN_FAILURES", 3)
    for i in range(3):
        assert (await call(app, "GET", "/me", f"guess-{i}"))[0] == 401
    status, error, headers = await call(app, "GET", "/me", tokens["Anna"])
    assert (status, error["error"]) == (429, "too_many_attempts")
    assert int(headers["retry-after"]) == error["retry_after_s"] > 0
    failures = agents.list_audit(factory, action="login_failed")
    assert len(failures) == 3 and {f.client_key for f in failures} == {client_key(PEER)}


async def test_a_disabled_agent_is_refused(app, factory, tokens):
    assert (await call(app, "GET", "/me", tokens["Bob"]))[0] == 200
    agents.disable_agent(factory, "Bob")
    status, error, _ = await call(app, "GET", "/me", tokens["Bob"])
    assert (status, error["error"]) == (401, "unauthorised")
    assert (await call(app, "GET", "/me", tokens["Anna"]))[0] == 200


async def test_unknown_handoffs_and_bad_replies_get_json_errors(app, tokens, handoff):
    anna = tokens["Anna"]
    assert (await call(app, "POST", "/handoffs/999999/claim", anna))[0] == 404
    assert (await call(app, "POST", f"/handoffs/{handoff}/claim", anna))[0] == 200
    status, error, _ = await call(app, "POST", f"/handoffs/{handoff}/reply", anna, {"text": " "})
    assert (status, error["error"]) == (400, "empty_reply")
    big = {"text": "x" * 3000}
    status, error, _ = await call(app, "POST", f"/handoffs/{handoff}/reply", anna, big)
    assert (status, error["error"]) == (413, "reply_too_long")


async def test_the_detail_shows_the_conversation(app, tokens, handoff):
    status, detail, _ = await call(app, "GET", f"/handoffs/{handoff}", tokens["Anna"])
    assert status == 200 and detail["paused"] is True
    assert [m["text"] for m in detail["messages"]] == ["my parcel arrived crushed, I want a human"]
    assert detail["customer"] is None and detail["handoff"]["status"] == "waiting"
    # The console's mood uses the policy's cut-off (contract.STRONG_FRUSTRATION).
    assert detail["sentiment"] == {"latest": 0.65, "peak": 0.65, "label": "angry"}
    assert detail["messages"][0]["mood"] == "angry"


async def test_the_queue_flags_conversations_at_complaint_risk(app, factory, tokens):
    support.conversation_handoff(factory, "calm", "wants a human")
    support.conversation_handoff(factory, "risky", "wants a human", risk=0.8349)
    # Rounds to 0.50 for the page, but the flag follows the full score (below the 0.5 cut-off).
    support.conversation_handoff(factory, "close-call", "wants a human", risk=0.4961)
    status, queue, _ = await call(app, "GET", "/queue", tokens["Anna"])
    assert status == 200
    entries = [
        (h["conversation_id"], h["risk"], h["at_risk"], h["priority"]) for h in queue["waiting"]
    ]
    # The at-risk conversation was raised to "high" priority, so it leads the queue.
    assert entries == [
        ("risky", 0.83, True, 1),
        ("calm", None, False, 2),
        ("close-call", 0.5, False, 2),
    ]
    [risky] = [h for h in queue["waiting"] if h["at_risk"]]
    status, detail, _ = await call(app, "GET", f"/handoffs/{risky['handoff_id']}", tokens["Anna"])
    assert status == 200
    assert (detail["handoff"]["risk"], detail["handoff"]["at_risk"]) == (0.83, True)


def test_behind_a_trusted_proxy_the_forwarded_client_is_throttled(factory, tokens):
    """Over real TCP (peer 127.0.0.1, listed as a proxy): each forwarded client counts alone."""
    app = Sanic(f"console_{uuid.uuid4().hex[:8]}")
    console = AgentConsole(factory, proxies=[ipaddress.ip_network("127.0.0.1/32")])
    app.blueprint(console.blueprint(), url_prefix=PREFIX)
    headers = {"Authorization": "Bearer guess", "X-Forwarded-For": "10.9.9.9, 198.51.100.7"}
    _, reply = app.test_client.get(PREFIX + "/api/me", headers=headers)
    assert reply.status == 401
    [failure] = agents.list_audit(factory, action="login_failed")
    assert failure.client_key == client_key("198.51.100.7")


async def test_the_old_shared_token_opens_nothing(app, tokens, monkeypatch):
    monkeypatch.setenv("KEFU_AGENT_TOKEN", "one-token-for-everyone")
    status, error, _ = await call(app, "GET", "/queue", "one-token-for-everyone")
    assert (status, error["error"]) == (401, "unauthorised")


# ---- the dashboard tab and the operators' /metrics (analytics) -----------------------------

#: The recording's window (tests/analytics/test_analytics_report.py counts it by hand).
WINDOW = "since=7d&until=2026-01-02"


@pytest.fixture(scope="module")
def analytics_url(tmp_path_factory) -> str:
    """An analytics database holding tests/analytics/conversations.jsonl."""
    from analytics import db
    from analytics.store import FactsStore
    from tests.analytics.conftest import NOW, ORDER_SECRET, RECORDING, broker_items

    url = f"sqlite:///{tmp_path_factory.mktemp('analytics') / 'analytics.db'}"
    db.upgrade(url)
    engine = db.engine(url)
    store = FactsStore(engine, order_secret=ORDER_SECRET, clock=lambda: NOW)
    store.ingest("broker", broker_items(RECORDING.read_text(encoding="utf-8").splitlines()))
    engine.dispose()
    return url


def analytics_app(factory, url: str) -> Sanic:
    app = Sanic(f"console_{uuid.uuid4().hex[:8]}")
    app.blueprint(AgentConsole(factory, analytics_url=url).blueprint(), url_prefix=PREFIX)
    return app


async def test_the_dashboard_shows_the_hand_counted_numbers(factory, tokens, analytics_url):
    app = analytics_app(factory, analytics_url)
    status, data, _ = await call(app, "GET", f"/dashboard?{WINDOW}", tokens["Anna"])
    assert status == 200 and data["agent"] == "Anna"
    assert data["containment"] == {
        "conversations": 8,
        "contained": 6,
        "rate": 0.75,
        "resolved": 4,
        "resolved_rate": 0.5,
    }
    assert (data["handoffs"]["handoffs"], data["handoffs"]["rate"]) == (2, 0.25)
    assert data["fallbacks"] == {"user_messages": 31, "fallbacks": 1, "rate": round(1 / 31, 4)}
    assert (data["csat"]["mean"], data["agent_wait"]["median_s"]) == (4.5, 167.5)
    assert data["tasks"]["tracking"]["rate"] == 0.3333
    assert data["languages"]["zh"]["agent_wait"]["median_s"] == 240.0
    assert [row["intent"] for row in data["intents_needing_data"]] == [
        "complaint",
        "return_item",
        "order_status",
    ]


async def test_the_dashboard_needs_an_agent_and_a_valid_window(factory, tokens, analytics_url):
    app = analytics_app(factory, analytics_url)
    status, error, _ = await call(app, "GET", f"/dashboard?{WINDOW}", None)
    assert (status, error["error"]) == (401, "unauthorised")
    status, error, _ = await call(app, "GET", "/dashboard?since=last+week", tokens["Anna"])
    assert (status, error["error"]) == (400, "bad_window")


async def test_without_analytics_tables_the_dashboard_says_so(factory, tokens, tmp_path):
    app = analytics_app(factory, f"sqlite:///{tmp_path / 'empty.db'}")
    status, error, _ = await call(app, "GET", f"/dashboard?{WINDOW}", tokens["Anna"])
    assert (status, error["error"]) == (503, "analytics_unavailable")
    assert "python -m analytics upgrade" in error["message"]


def scrape(app, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    _, reply = app.test_client.get(PREFIX + "/metrics", headers=headers)
    return reply


def samples(text: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_are_the_analytics_numbers_in_prometheus_text(factory, analytics_url, monkeypatch):
    from tests.analytics.conftest import NOW

    monkeypatch.setattr("time.time", lambda: NOW)  # the recording's day is the last 24 h
    monkeypatch.delenv("KEFU_METRICS_TOKEN", raising=False)
    reply = scrape(analytics_app(factory, analytics_url))
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
    values = samples(reply.text)
    assert values[("kefu_analytics_up", ())] == 1
    assert values[("kefu_analytics_window_seconds", ())] == 86_400
    assert values[("kefu_conversations", (("language", "all"),))] == 8
    assert values[("kefu_containment_ratio", (("language", "all"),))] == 0.75
    assert values[("kefu_handoff_ratio", (("language", "all"),))] == 0.25
    assert values[("kefu_fallback_ratio", (("language", "all"),))] == round(1 / 31, 4)
    assert values[("kefu_fallback_ratio", (("language", "zh"),))] == 0
    assert values[("kefu_csat_mean", (("language", "en"),))] == 5.0
    assert values[("kefu_csat_mean", (("language", "zh"),))] == 4.0
    assert values[("kefu_agent_wait_median_seconds", (("language", "all"),))] == 167.5
    assert values[("kefu_handoffs", (("language", "all"), ("reason", "complaint")))] == 1
    assert values[("kefu_task_completion_ratio", (("flow", "tracking"),))] == 0.3333


def test_metrics_need_the_token_when_one_is_set(factory, analytics_url, monkeypatch):
    monkeypatch.setenv("KEFU_METRICS_TOKEN", "scrape-secret")
    app = analytics_app(factory, analytics_url)
    assert scrape(app).status == 401
    assert scrape(app, "wrong").status == 401
    assert scrape(app, "scrape-secret").status == 200


def test_without_a_token_only_this_machine_may_scrape(factory, analytics_url, monkeypatch):
    monkeypatch.delenv("KEFU_METRICS_TOKEN", raising=False)
    app = Sanic(f"console_{uuid.uuid4().hex[:8]}")
    proxied = AgentConsole(
        factory, proxies=[ipaddress.ip_network("127.0.0.1/32")], analytics_url=analytics_url
    )
    app.blueprint(proxied.blueprint(), url_prefix=PREFIX)
    _, reply = app.test_client.get(PREFIX + "/metrics", headers={"X-Forwarded-For": "198.51.100.7"})
    assert reply.status == 403 and "KEFU_METRICS_TOKEN" in reply.json["message"]
    _, reply = app.test_client.get(PREFIX + "/metrics")  # the proxy's own loopback scrape
    assert reply.status == 200


def test_metrics_without_analytics_tables_report_down(factory, tmp_path, monkeypatch):
    monkeypatch.delenv("KEFU_METRICS_TOKEN", raising=False)
    reply = scrape(analytics_app(factory, f"sqlite:///{tmp_path / 'empty.db'}"))
    assert reply.status == 200
    values = samples(reply.text)
    assert values[("kefu_analytics_up", ())] == 0
    assert not any(name == "kefu_conversations" for name, _ in values)


class Clock:
    """Monotonic seconds the test moves by hand (the metrics cache's clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counted_metrics_app(factory, url: str, monkeypatch) -> tuple[Sanic, Clock, list[str]]:
    """An app whose ``/metrics`` caches with a hand-moved clock, and the queries it ran."""
    from analytics import prometheus

    monkeypatch.delenv("KEFU_METRICS_TOKEN", raising=False)
    clock = Clock()
    monkeypatch.setattr(prometheus, "CACHE", prometheus.ExpositionCache(clock=clock))
    console = AgentConsole(factory, analytics_url=url)
    queries: list[str] = []
    sa.event.listen(
        console.analytics_engine(),
        "before_cursor_execute",
        lambda conn, cursor, statement, *rest: queries.append(statement),
    )
    app = Sanic(f"console_{uuid.uuid4().hex[:8]}")
    app.blueprint(console.blueprint(), url_prefix=PREFIX)
    return app, clock, queries


def test_scrapes_within_the_cache_period_run_the_queries_once(factory, analytics_url, monkeypatch):
    from tests.analytics.conftest import NOW

    monkeypatch.setattr("time.time", lambda: NOW)
    monkeypatch.delenv("KEFU_METRICS_CACHE_S", raising=False)  # the default: 15 s
    app, clock, queries = counted_metrics_app(factory, analytics_url, monkeypatch)
    first = scrape(app)
    per_scrape = len(queries)
    assert first.status == 200 and per_scrape > 0
    clock.now += 14.9  # another Prometheus server, the same period
    again = scrape(app)
    assert again.status == 200 and again.body == first.body
    assert len(queries) == per_scrape
    assert samples(again.text)[("kefu_conversations", (("language", "all"),))] == 8
    clock.now += 0.1  # the period is over
    assert scrape(app).status == 200
    assert len(queries) == 2 * per_scrape


def test_the_cache_period_is_set_by_the_environment_and_0_turns_it_off(
    factory, analytics_url, monkeypatch
):
    app, clock, queries = counted_metrics_app(factory, analytics_url, monkeypatch)
    monkeypatch.setenv("KEFU_METRICS_CACHE_S", "0")
    scrape(app)
    per_scrape = len(queries)
    scrape(app)
    assert len(queries) == 2 * per_scrape
    monkeypatch.setenv("KEFU_METRICS_CACHE_S", "60")
    scrape(app)
    clock.now += 59
    scrape(app)
    assert len(queries) == 3 * per_scrape
    clock.now += 1
    scrape(app)
    assert len(queries) == 4 * per_scrape
    from analytics.prometheus import cache_seconds

    for unreadable in ("soon", "-5", "nan"):
        monkeypatch.setenv("KEFU_METRICS_CACHE_S", unreadable)
        assert cache_seconds() == 15  # the default, with a warning in the log


def test_concurrent_scrapes_wait_for_the_one_computing(analytics_url):
    from analytics import db
    from analytics.prometheus import ExpositionCache
    from tests.helpers.concurrency import race

    engine = db.engine(analytics_url)
    queries: list[str] = []
    sa.event.listen(
        engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *rest: queries.append(statement),
    )
    ExpositionCache(ttl_s=0).get(engine)
    per_scrape, queries[:] = len(queries), []
    cache = ExpositionCache(ttl_s=15, clock=Clock())
    bodies, errors = race(lambda _: cache.get(engine), n=4)
    engine.dispose()
    assert errors == [] and len(bodies) == 4 and len(set(bodies)) == 1
    assert len(queries) == per_scrape


@pytest.mark.browser
def test_the_dashboard_tab_in_chromium(factory, tokens, analytics_url, outreach_app, tmp_path):
    """The page's Dashboard tab renders the route's answer (cards and tables) and the outreach
    list and, when the analytics tables are absent, says so. The API answers are the real
    routes' answers, served to the browser by Playwright."""
    import json
    import os
    from pathlib import Path

    chromium_path = Path(os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium"))
    if not chromium_path.exists():
        pytest.skip(f"{chromium_path} is missing: run `make browser` (Debian's chromium)")
    from playwright.sync_api import sync_playwright

    headers = {"Authorization": f"Bearer {tokens['Anna']}"}
    path = PREFIX + f"/api/dashboard?{WINDOW}"
    _, good = analytics_app(factory, analytics_url).test_client.get(path, headers=headers)
    _, down = analytics_app(factory, f"sqlite:///{tmp_path / 'empty.db'}").test_client.get(
        path, headers=headers
    )
    _, outreach = outreach_app.test_client.get(PREFIX + "/api/outreach", headers=headers)
    assert (good.status, down.status, outreach.status) == (200, 503, 200)
    static = ROOT / "channels" / "static"
    answers = {"dashboard": (good.status, good.text)}

    def serve(route):
        url = route.request.url.split("?")[0].replace("http://kefu.test", "")
        if url == PREFIX + "/":
            return route.fulfill(path=str(static / "agent" / "index.html"))
        if url.startswith("/webhooks/webchat/static/"):
            return route.fulfill(path=str(static / url.removeprefix("/webhooks/webchat/static/")))
        api = {
            "/me": (200, json.dumps({"agent": "Anna", "agent_id": 1})),
            "/queue": (200, json.dumps({"agent": "Anna", "waiting": [], "assigned": []})),
            "/dashboard": answers["dashboard"],
            "/outreach": (outreach.status, outreach.text),
        }
        status, body = api.get(url.removeprefix(PREFIX + "/api"), (404, "{}"))
        return route.fulfill(status=status, body=body, content_type="application/json")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path), args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route("http://kefu.test/**", serve)
            page.goto(f"http://kefu.test{PREFIX}/")
            assert page.locator("#tabs").is_hidden()
            page.fill("#agent-token", "a-token")
            page.click("#login button[type=submit]")
            page.click("#tab-dashboard")
            page.wait_for_selector("#dash-cards .card")
            assert page.locator("#panel-conversations").is_hidden()
            cards = page.inner_text("#dash-cards")
            assert "75.0%" in cards and "Containment" in cards and "168 s" in cards
            assert "4.50" in cards and "3.2%" in cards  # CSAT mean, 1 fallback of 31
            assert "return_item" in page.inner_text("#dash-intents")
            assert "中文 (zh)" in page.inner_text("#dash-languages")
            assert "tracking" in page.inner_text("#dash-tasks")
            assert "complaint" in page.inner_text("#dash-reasons")
            agents = page.inner_text("#dash-agents")
            assert "anna" in agents and "李娜" in agents and "240 s" in agents
            page.wait_for_selector("#outreach-orders tbody tr")
            listed = page.inner_text("#outreach")
            assert "Orders to reach out to" in listed and "KF-190901" in listed
            assert "2026-01-01 02:00 UTC" in listed
            if os.environ.get("KEFU_DASHBOARD_SCREENSHOT"):
                page.screenshot(path=os.environ["KEFU_DASHBOARD_SCREENSHOT"], full_page=True)

            answers["dashboard"] = (down.status, down.text)
            page.click("#dash-form button[type=submit]")
            page.wait_for_selector("#dash-body", state="hidden")
            assert "unavailable" in page.inner_text("#dash-status")
            page.click("#tab-conversations")
            assert page.locator("#panel-conversations").is_visible()
        finally:
            browser.close()


# ---- the outreach list: late orders customers already asked about -----------------------


def conversation_about(sender_id: str, number: str, *, later_s: float = 0) -> list[str]:
    """The recorded tracking conversation ``rest-en-track`` as ``sender_id``, about order
    ``number``, started ``later_s`` seconds after the recorded one."""
    import json

    from tests.analytics.conftest import RECORDING

    lines = []
    for line in RECORDING.read_text(encoding="utf-8").splitlines():
        body = json.loads(line)
        if body["sender_id"] == "rest-en-track":
            body = {**body, "sender_id": sender_id, "timestamp": body["timestamp"] + later_s}
            lines.append(json.dumps(body).replace("KF-100023", number))
    return lines


@pytest.fixture
def outreach_app(factory, tmp_path, monkeypatch) -> Sanic:
    """A shop with a late order asked about twice, a late order nobody asked about and an
    on-time order asked about once; the analytics tables hold those conversations."""
    from sqlalchemy.orm import Session

    from analytics import db
    from analytics.store import FactsStore
    from tests.analytics.conftest import NOW, ORDER_SECRET, broker_items
    from tests.commerce.commerce_factories import add_customer, add_order, add_product, add_variant

    # The consumer hashed the order numbers with this key; the console must use the same.
    monkeypatch.setenv("KEFU_HASH_SECRET", ORDER_SECRET)
    with Session(factory.kw["bind"]) as s, s.begin():
        customer = add_customer(s, "late@example.com")
        variant = add_variant(s, add_product(s, "OUT-SHOE"), "OUT-SHOE-42")
        # Shipped 9 days ago, promised 3 days after that: 6 days late, not delivered.
        add_order(s, "KF-190901", customer, [(variant, 1)], status="shipped", placed_days_ago=10)
        add_order(s, "KF-190902", customer, [(variant, 1)], status="shipped", placed_days_ago=10)
        # Shipped yesterday: its promised date has not come.
        add_order(s, "KF-190904", customer, [(variant, 1)], status="shipped", placed_days_ago=1)
    url = f"sqlite:///{tmp_path / 'outreach-analytics.db'}"
    db.upgrade(url)
    engine = db.engine(url)
    lines = conversation_about("late-1", "KF-190901")
    lines += conversation_about("late-2", "KF-190901", later_s=3600)
    lines += conversation_about("on-time-1", "KF-190904")
    store = FactsStore(engine, order_secret=ORDER_SECRET, clock=lambda: NOW)
    assert store.ingest("test", broker_items(lines)).skipped == 0
    engine.dispose()
    return analytics_app(factory, url)


async def test_outreach_lists_the_late_orders_customers_asked_about(outreach_app, tokens):
    status, data, _ = await call(outreach_app, "GET", "/outreach", tokens["Anna"])
    assert status == 200 and data["agent"] == "Anna"
    [order] = data["orders"]  # not the on-time order, not the late one nobody asked about
    assert order == {
        "number": "KF-190901",
        "status": "shipped",
        "estimated_delivery": order["estimated_delivery"],
        "days_late": 6,
        "carrier": order["carrier"],
        "contacts": 2,
        # The later of the two conversations (the recording's start, an hour on), in UTC.
        "last_contact_at": "2026-01-01T02:00:00+00:00",
    }
    assert order["carrier"] and order["estimated_delivery"][:4].isdigit()


async def test_outreach_with_min_contacts_0_lists_every_late_order(outreach_app, tokens):
    status, data, _ = await call(outreach_app, "GET", "/outreach?min_contacts=0", tokens["Anna"])
    assert status == 200
    assert [(o["number"], o["contacts"], o["last_contact_at"]) for o in data["orders"]] == [
        ("KF-190901", 2, "2026-01-01T02:00:00+00:00"),
        ("KF-190902", 0, None),
    ]
    status, data, _ = await call(outreach_app, "GET", "/outreach?min_contacts=3", tokens["Anna"])
    assert (status, data["orders"]) == (200, [])


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
async def test_outreach_refuses_a_bad_min_contacts(outreach_app, tokens, value):
    status, error, _ = await call(
        outreach_app, "GET", f"/outreach?min_contacts={value}", tokens["Anna"]
    )
    assert (status, error["error"]) == (400, "bad_min_contacts")


async def test_outreach_needs_an_agent(outreach_app, tokens):
    status, error, _ = await call(outreach_app, "GET", "/outreach", None)
    assert (status, error["error"]) == (401, "unauthorised")
    status, error, _ = await call(outreach_app, "GET", "/outreach", "wrong")
    assert (status, error["error"]) == (401, "unauthorised")


async def test_without_analytics_tables_outreach_says_so(outreach_app, factory, tokens, tmp_path):
    # The shop has late orders (outreach_app made them), but no conversations can be counted.
    app = analytics_app(factory, f"sqlite:///{tmp_path / 'empty.db'}")
    status, error, _ = await call(app, "GET", "/outreach", tokens["Anna"])
    assert (status, error["error"]) == (503, "analytics_unavailable")
    assert "outreach list is unavailable" in error["message"]
