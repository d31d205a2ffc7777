"""The metrics and the report against numbers counted by hand from the recording.

The recording (tests/analytics/record_conversations.py), the eight conversations of 2026-01-01
(the ninth, forty days older, falls outside a 7-day window):

=================  ====  =====  ========  ===========================  =======  ====  =====
conversation       lang  msgs   fallback  tasks                        handoff  CSAT  wait
=================  ====  =====  ========  ===========================  =======  ====  =====
rest-en-track      en    4      0         tracking completed           —        5     —
rest-zh-cancel     zh    5      0         cancel completed             —        4     —
web-en-return      en    4      0         return stopped               asked    —     95 s
rest-zh-stock      zh    3      0         stock, faq completed         —        —     —
rest-en-fallback   en    4      1         tracking abandoned           —        —     —
web-zh-complaint   zh    2      0         complaint completed          complaint —    240 s
rest-en-faq        en    4      0         faq, faq completed           —        —     —
rest-zh-verify     zh    5      0         tracking stopped             —        —     —
=================  ====  =====  ========  ===========================  =======  ====  =====

Contained (no handoff): 6 of 8; resolved (no handoff, a task completed): track, cancel, stock,
faq = 4 of 8. 31 customer messages, 1 fallback.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from analytics.__main__ import main
from analytics.metrics import Window, report_data
from analytics.report import parse_since, render_html, write_report
from tests.analytics.conftest import BASE, NOW, RECORDING, broker_items, tracker_store_endpoints

WEEK = Window(NOW - 7 * 86_400, NOW)
CHROMIUM = Path(os.environ.get("KEFU_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture
def loaded(facts_store, analytics_engine, recorded_lines):
    facts_store.ingest("broker", broker_items(recorded_lines))
    return analytics_engine


@pytest.fixture
def week(loaded) -> dict:
    with loaded.connect() as conn:
        return report_data(conn, WEEK)


def test_containment_handoffs_and_fallbacks_match_the_hand_count(week):
    assert week["containment"] == {
        "conversations": 8,
        "contained": 6,
        "rate": 0.75,
        "resolved": 4,
        "resolved_rate": 0.5,
    }
    assert week["handoffs"]["handoffs"] == 2
    assert week["handoffs"]["rate"] == 0.25
    assert {k: v for k, v in week["handoffs"]["reasons"].items() if v} == {
        "asked": 1,
        "complaint": 1,
    }
    assert week["fallbacks"] == {"user_messages": 31, "fallbacks": 1, "rate": round(1 / 31, 4)}


def test_task_completion_per_flow_matches_the_hand_count(week):
    started = {f: (t["started"], t["completed"]) for f, t in week["tasks"].items() if t["started"]}
    assert started == {
        "tracking": (3, 1),
        "cancel": (1, 1),
        "return": (1, 0),
        "stock": (1, 1),
        "faq": (3, 3),
        "complaint": (1, 1),
    }
    assert week["tasks"]["tracking"]["outcomes"] == {"abandoned": 1, "completed": 1, "stopped": 1}
    assert week["tasks"]["tracking"]["rate"] == 0.3333


def test_csat_and_agent_wait_match_the_hand_count(week):
    assert week["csat"] == {
        "answers": 2,
        "mean": 4.5,
        "satisfied_share": 1.0,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1},
    }
    assert week["agent_wait"] == {"answered": 2, "median_s": 167.5, "max_s": 240.0}


def test_per_agent_numbers_match_the_hand_count(week):
    # anna answered web-en-return after 95 s, 李娜 web-zh-complaint after 240 s; neither rated.
    assert week["agents"] == [
        {"agent": "anna", "conversations": 1, "csat_answers": 0, "csat_mean": None,
         "median_wait_s": 95.0},
        {"agent": "李娜", "conversations": 1, "csat_answers": 0, "csat_mean": None,
         "median_wait_s": 240.0},
    ]  # fmt: skip


def test_an_agents_csat_is_the_mean_of_the_conversations_they_took_part_in(loaded):
    from analytics.models import Conversation

    with loaded.begin() as conn:
        rated = {"web-en-return": 2, "web-zh-complaint": 5}
        for sender, score in rated.items():
            conn.execute(
                sa.update(Conversation.__table__)
                .where(Conversation.__table__.c.sender_id == sender)
                .values(csat=score, agent="anna")
            )
    with loaded.connect() as conn:
        [anna] = report_data(conn, WEEK)["agents"]
    assert (anna["agent"], anna["conversations"], anna["csat_answers"]) == ("anna", 2, 2)
    assert (anna["csat_mean"], anna["median_wait_s"]) == (3.5, 167.5)


def test_per_language_splits(week):
    en, zh = week["languages"]["en"], week["languages"]["zh"]
    assert (en["containment"]["conversations"], zh["containment"]["conversations"]) == (4, 4)
    assert (en["containment"]["resolved"], zh["containment"]["resolved"]) == (2, 2)
    assert (en["fallbacks"]["user_messages"], en["fallbacks"]["fallbacks"]) == (16, 1)
    assert (zh["fallbacks"]["user_messages"], zh["fallbacks"]["fallbacks"]) == (15, 0)
    assert (en["csat"]["mean"], zh["csat"]["mean"]) == (5.0, 4.0)
    assert (en["agent_wait"]["median_s"], zh["agent_wait"]["median_s"]) == (95.0, 240.0)
    assert (en["handoffs"]["reasons"]["asked"], zh["handoffs"]["reasons"]["complaint"]) == (1, 1)


def test_intents_needing_training_data(week):
    assert week["intents_needing_data"] == [
        {"intent": "complaint", "messages": 1, "fallbacks": 0, "rephrased": 0,
         "handed_off": 1, "troubled": 1, "rate": 1.0},
        {"intent": "return_item", "messages": 1, "fallbacks": 0, "rephrased": 0,
         "handed_off": 1, "troubled": 1, "rate": 1.0},
        # Four order_status messages, one of them the fallback "my thingy never came??".
        {"intent": "order_status", "messages": 4, "fallbacks": 1, "rephrased": 1,
         "handed_off": 0, "troubled": 1, "rate": 0.25},
    ]  # fmt: skip


def test_the_window_selects_conversations_by_their_start(loaded):
    with loaded.connect() as conn:
        wide = report_data(conn, Window(BASE - 50 * 86_400, NOW))
        before = report_data(conn, Window(NOW - 86_400 * 400, BASE))
    assert wide["containment"]["conversations"] == 9
    assert wide["tasks"]["faq"]["started"] == 4
    assert before["containment"]["conversations"] == 1


@pytest.mark.parametrize(
    "value, expected",
    [("7d", NOW - 7 * 86_400), ("12h", NOW - 43_200), ("30m", NOW - 1_800), ("2026-01-01", BASE)],
)
def test_since(value, expected):
    assert parse_since(value, NOW) == expected


def test_since_refuses_other_forms():
    with pytest.raises(ValueError, match="7d"):
        parse_since("last week", NOW)


def test_the_report_files_hold_the_same_numbers(loaded, tmp_path):
    data = write_report(loaded, tmp_path, WEEK.since, WEEK.until)
    on_disk = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(data))
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 4
    assert "75.0%" in page and "168 s" in page and "return_item" in page


def test_the_page_escapes_what_it_shows(week):
    week = json.loads(json.dumps(week))
    week["intents_needing_data"][0]["intent"] = "<script>alert(1)</script>"
    page = render_html(week, {})
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_the_command_line_from_tracker_store_to_report(tmp_path, tracker_store_engine, capsys):
    endpoints = tracker_store_endpoints(tmp_path, tracker_store_engine)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["upgrade", "--database-url", url]) == 0
    consume = ["consume", "--from-tracker-store", "--endpoints", str(endpoints), "--once"]
    assert main([*consume, "--settle-seconds", "0", "--database-url", url]) == 0
    assert '"accepted": 262' in capsys.readouterr().out
    out = tmp_path / "report"
    report = ["report", "--since", "7d", "--until", "2026-01-02", "--out", str(out)]
    assert main([*report, "--database-url", url]) == 0
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["containment"]["conversations"] == 8
    assert data["agent_wait"]["median_s"] == 167.5


def test_the_command_line_replays_a_recording(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    assert main(["upgrade", "--database-url", url]) == 0
    replay = ["consume", "--from-jsonl", str(RECORDING), "--batch-size", "100"]
    assert main([*replay, "--database-url", url]) == 0
    assert main([*replay, "--database-url", url]) == 0
    first, second = capsys.readouterr().out.strip().splitlines()[-2:]
    assert json.loads(first)["accepted"] == 262
    assert json.loads(second) == {**json.loads(first), "accepted": 0, "duplicates": 262}


def test_rabbitmq_needs_a_bound(capsys):
    assert main(["consume", "--from-rabbitmq", "--database-url", "sqlite://"]) == 2
    assert "--max-seconds" in capsys.readouterr().err


@pytest.mark.browser
def test_the_report_renders_in_chromium(loaded, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium)")
    from PIL import Image

    write_report(loaded, tmp_path, WEEK.since, WEEK.until)
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,1600",
            f"--screenshot={shot}",
            (tmp_path / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    assert image.size == (1280, 1600)
    colours = image.getcolors(maxcolors=1 << 20) or []
    white = sum(count for count, rgb in colours if rgb == (255, 255, 255))
    # The cards, charts (green, red, blue bars) and tables cover a good part of the page.
    assert white < 0.9 * image.size[0] * image.size[1]
    assert any(rgb == (0x2D, 0xA4, 0x4E) for _, rgb in colours)  # the "completed" bars
    if os.environ.get("KEFU_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["KEFU_REPORT_SCREENSHOT"])
