"""The complaint-risk model: features, its edge over sentiment alone, scoring, outreach."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from analytics import risk
from analytics.events import order_key, reduce_event
from analytics.facts import conversation_facts
from tests.analytics.conftest import NOW, ORDER_SECRET, broker_items


@pytest.fixture(scope="module")
def small_model() -> risk.RiskModel:
    return risk.train(conversations=600, seed=1)


def recorded_facts(bodies, sender_id):
    events = [reduce_event(b, ORDER_SECRET) for b in bodies if b["sender_id"] == sender_id]
    return conversation_facts(sender_id, events, order_secret=ORDER_SECRET)


def test_acting_at_the_cutoff_counts_offers_and_their_hits():
    cut = risk.at_cutoff([1, 0, 1, 0], [0.9, 0.6, 0.2, 0.1], 0.5)
    assert cut == {"cutoff": 0.5, "flagged_share": 0.5, "precision": 0.5, "recall": 0.5}
    assert risk.at_cutoff([0, 1], [0.1, 0.2], 0.5)["precision"] == 0.0  # nobody offered


def test_frustration_slope_and_prior_contacts():
    assert risk.frustration_slope([]) == 0.0
    assert risk.frustration_slope([0.5]) == 0.0
    assert risk.frustration_slope([0.1, 0.3, 0.5]) == pytest.approx(0.2)
    assert risk.frustration_slope([0.6, 0.4]) == pytest.approx(-0.2)
    prior = risk.prior_contacts(
        [("c", 30.0, ["k1"]), ("a", 10.0, ["k1"]), ("b", 20.0, ["k2"]), ("d", 40.0, [])]
    )
    assert prior == {"a": 0, "b": 0, "c": 1, "d": 0}


def test_the_model_beats_the_sentiment_only_baseline_on_held_out_simulated_data():
    result = risk.evaluate(conversations=1500, seed=7)
    model = result["results"]["risk model"]
    baseline = result["results"]["sentiment-only baseline"]
    assert set(baseline["features"]) < set(model["features"])
    assert "delay_days" in model["features"] and "prior_contacts" in model["features"]
    assert model["roc_auc"] > baseline["roc_auc"] + 0.01
    assert model["precision_top_10"] > baseline["precision_top_10"]
    assert model["roc_auc"] > 0.7
    assert result["train"] + result["test"] == 1500


def test_a_recorded_conversation_scores_between_0_and_1(recorded_bodies, small_model):
    facts = recorded_facts(recorded_bodies, "rest-en-track")
    calm = risk.score(facts, model=small_model)
    assert 0.0 <= calm <= 1.0
    # The same conversation about an order six days late, asked about twice before, is riskier.
    late = risk.score(facts, prior_contacts=2, delay_days=6, model=small_model)
    assert calm < late <= 1.0
    angry = recorded_facts(recorded_bodies, "web-zh-complaint")
    assert 0.0 <= risk.score(angry, model=small_model) <= 1.0


def test_a_saved_model_scores_the_same(tmp_path, recorded_bodies, small_model):
    path = tmp_path / "risk.joblib"
    risk.save(small_model, path)
    facts = recorded_facts(recorded_bodies, "rest-en-fallback")
    assert risk.score(facts, model=risk.load(path)) == pytest.approx(
        risk.score(facts, model=small_model)
    )


@pytest.fixture
def commerce_engine(tmp_path):
    from commerce.__main__ import upgrade
    from commerce.db import make_engine

    url = f"sqlite:///{tmp_path / 'commerce.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def conversation_about(bodies, template: str, sender_id: str, number: str) -> list[str]:
    """The recorded conversation ``template`` as ``sender_id``, about order ``number``."""
    lines = []
    for body in bodies:
        if body["sender_id"] == template:
            text = json.dumps({**body, "sender_id": sender_id})
            lines.append(text.replace("KF-100023", number).replace(template, sender_id))
    return lines


def test_late_orders_with_a_prior_contact_are_listed_for_outreach(
    commerce_engine, facts_store, analytics_engine, recorded_bodies
):
    from sqlalchemy.orm import Session

    from tests.commerce.commerce_factories import add_customer, add_order, add_product, add_variant

    with Session(commerce_engine) as s, s.begin():
        customer = add_customer(s, "late@example.com")
        variant = add_variant(s, add_product(s, "RISK-SHOE"), "RISK-SHOE-42")
        # Shipped 9 days ago, promised 3 days after that: 6 days late, not delivered.
        add_order(s, "KF-190901", customer, [(variant, 1)], status="shipped", placed_days_ago=10)
        add_order(s, "KF-190902", customer, [(variant, 1)], status="shipped", placed_days_ago=10)
        # Delivered: not late any more, even though the customer asked about it.
        add_order(
            s,
            "KF-190903",
            customer,
            [(variant, 1)],
            status="delivered",
            placed_days_ago=10,
            delivered_days_ago=1,
        )
        # Shipped yesterday: its promised date has not come.
        add_order(s, "KF-190904", customer, [(variant, 1)], status="shipped", placed_days_ago=1)
    lines = conversation_about(recorded_bodies, "rest-en-track", "late-1", "KF-190901")
    lines += conversation_about(recorded_bodies, "rest-en-track", "late-2", "KF-190901")
    lines += conversation_about(recorded_bodies, "rest-en-track", "done-1", "KF-190903")
    lines += conversation_about(recorded_bodies, "rest-en-track", "new-1", "KF-190904")
    assert facts_store.ingest("test", broker_items(lines)).skipped == 0

    late = risk.late_shipments(commerce_engine)
    assert {r["number"] for r in late} == {"KF-190901", "KF-190902"}
    assert {r["days_late"] for r in late} == {6}
    later = risk.late_shipments(
        commerce_engine, today=datetime.now(timezone.utc).date() + timedelta(days=5)
    )
    assert {(r["number"], r["days_late"]) for r in later} == {
        ("KF-190901", 11),
        ("KF-190902", 11),
        ("KF-190904", 2),
    }

    listed = risk.late_orders_with_contacts(
        commerce_engine, analytics_engine, order_secret=ORDER_SECRET
    )
    assert [r["number"] for r in listed] == ["KF-190901"]
    assert listed[0]["contacts"] == 2
    assert listed[0]["conversations"] == ["late-1", "late-2"]
    assert listed[0]["order_key"] == order_key("KF-190901", ORDER_SECRET)
    everyone = risk.late_orders_with_contacts(
        commerce_engine, analytics_engine, order_secret=ORDER_SECRET, min_contacts=0
    )
    assert [(r["number"], r["contacts"]) for r in everyone] == [
        ("KF-190901", 2),
        ("KF-190902", 0),
    ]
    assert risk.order_delays(commerce_engine, ORDER_SECRET) == {
        order_key("KF-190901", ORDER_SECRET): 6,
        order_key("KF-190902", ORDER_SECRET): 6,
    }


def test_contacts_before_counts_earlier_conversations_about_the_order(
    facts_store, analytics_engine, recorded_bodies
):
    first = conversation_about(recorded_bodies, "rest-en-track", "c-1", "KF-190801")
    facts_store.ingest("test", broker_items(first))
    later = defaultdict(list)
    for line in conversation_about(recorded_bodies, "rest-en-track", "c-2", "KF-190801"):
        body = json.loads(line)
        body["timestamp"] += 3600
        later["c-2"].append(reduce_event(body, ORDER_SECRET))
    facts = conversation_facts("c-2", later["c-2"], order_secret=ORDER_SECRET)
    assert risk.contacts_before(analytics_engine, facts) == 1
    alone = recorded_facts(recorded_bodies, "rest-en-faq")
    assert risk.contacts_before(analytics_engine, alone) == 0


def test_command_line(tmp_path, capsys):
    from analytics.__main__ import main
    from analytics.simulate import labels_path

    out = tmp_path / "eval.json"
    assert main(["risk-eval", "--conversations", "400", "--seed", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| risk model |" in printed and "| sentiment-only baseline |" in printed
    result = json.loads(out.read_text())
    assert result["data"].startswith("simulated")
    assert set(result["results"]) == {"risk model", "sentiment-only baseline"}

    sim = tmp_path / "sim.jsonl"
    assert main(["simulate", "--conversations", "20", "--seed", "2", "--out", str(sim)]) == 0
    assert len(labels_path(sim).read_text().splitlines()) == 20

    model = tmp_path / "risk.joblib"
    assert main(["risk-train", "--conversations", "300", "--seed", "2", "--out", str(model)]) == 0
    assert isinstance(risk.load(model), risk.RiskModel)


def test_outreach_command_prints_json(
    tmp_path, capsys, monkeypatch, commerce_engine, analytics_url, facts_store, recorded_bodies
):
    from sqlalchemy.orm import Session

    from analytics.__main__ import main
    from tests.commerce.commerce_factories import add_customer, add_order, add_product, add_variant

    monkeypatch.setenv("KEFU_HASH_SECRET", ORDER_SECRET)
    with Session(commerce_engine) as s, s.begin():
        customer = add_customer(s, "late@example.com")
        variant = add_variant(s, add_product(s, "RISK-SHOE"), "RISK-SHOE-42")
        add_order(s, "KF-190911", customer, [(variant, 1)], status="shipped", placed_days_ago=10)
    facts_store.ingest(
        "test",
        broker_items(conversation_about(recorded_bodies, "rest-en-track", "o-1", "KF-190911")),
    )
    url = str(commerce_engine.url)
    assert main(["risk-outreach", "--commerce-url", url, "--database-url", analytics_url]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["number"], r["contacts"]) for r in rows] == [("KF-190911", 1)]


def test_live_risk_scores_an_open_conversation_from_its_tracker_events(
    small_model, tmp_path, commerce_engine, facts_store, analytics_engine, recorded_bodies
):
    from sqlalchemy.orm import Session

    from tests.commerce.commerce_factories import add_customer, add_order, add_product, add_variant

    with Session(commerce_engine) as s, s.begin():
        customer = add_customer(s, "live@example.com")
        variant = add_variant(s, add_product(s, "LIVE-SHOE"), "LIVE-SHOE-42")
        # Shipped 9 days ago, promised 3 days after that: 6 days late.
        add_order(s, "KF-190911", customer, [(variant, 1)], status="shipped", placed_days_ago=10)
    earlier = conversation_about(recorded_bodies, "rest-en-track", "before-1", "KF-190911")
    earlier += conversation_about(recorded_bodies, "rest-en-track", "before-2", "KF-190911")
    facts_store.ingest("test", broker_items(earlier))
    model_path = tmp_path / "risk.joblib"
    risk.save(small_model, model_path)
    live = risk.LiveRisk(
        model_path,
        commerce_engine=commerce_engine,
        analytics_engine=analytics_engine,
        order_secret=ORDER_SECRET,
    )
    now = NOW + 3600
    angry = [
        {
            "event": "user",
            "timestamp": now + i,
            "text": text,
            "parse_data": {"intent": {"name": "order_status"}, "sentiment": {"frustration": f}},
        }
        for i, (text, f) in enumerate([("where is it", 0.5), ("still nothing!!", 0.9)])
    ]
    angry.append({"event": "slot", "name": "order_number"})  # no timestamp: skipped, as stored
    high = live.score("live-1", angry, order_numbers=["KF-190911"])
    calm = live.score("live-2", [{**angry[0], "parse_data": {}}], order_numbers=[])
    assert high >= 0.5 > calm

    # No model trained yet: nobody is scored (and the action server carries on).
    assert risk.LiveRisk(tmp_path / "missing.joblib").score("live-1", angry) is None
    # An analytics database without its tables costs the prior contacts, not the score.
    bare = risk.LiveRisk(
        model_path,
        commerce_engine=commerce_engine,
        analytics_engine=sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}"),
        order_secret=ORDER_SECRET,
    )
    assert calm <= bare.score("live-1", angry, order_numbers=["KF-190911"]) < high
