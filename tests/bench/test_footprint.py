"""The footprint benchmark's inputs and report (loading and parsing run in `make bench-footprint`)."""

from pathlib import Path

from bench.footprint import memory_mib, story_messages, table


def test_story_messages_are_plain_distinct_user_texts(tmp_path: Path):
    (tmp_path / "a.yml").write_text(
        """
stories:
- story: one
  steps:
  - user: 'can you speak [chinese]{"entity": "target_language", "value": "zh"}?'
    intent: switch_language
  - action: action_switch_language
  - user: "where is [KF-100004](order_number)"
    intent: order_status
  - user: '/inform{"rating": "5"}'
    intent: inform
- story: two
  steps:
  - user: "where is [KF-100004](order_number)"
    intent: order_status
  - user: "你好"
    intent: greet
""",
        encoding="utf-8",
    )

    assert story_messages(tmp_path) == ["can you speak chinese?", "where is KF-100004", "你好"]


def test_the_shops_stories_have_both_languages():
    texts = story_messages()

    assert any("订单" in t for t in texts) and any("order" in t for t in texts)


def test_memory_is_read_from_proc():
    memory = memory_mib()

    assert 0 < memory["VmRSS"] <= memory["VmHWM"]


def test_table_gives_ratios_against_the_reference():
    def figures(scale: float) -> dict:
        latency = {"p50_ms": 10.0 * scale, "p90_ms": 20.0 * scale}
        return {
            "load_s": 4.0 * scale,
            "rss_loaded_mib": 1000.0 * scale,
            "rss_after_parsing_mib": 1200.0 * scale,
            "peak_rss_mib": 1500.0 * scale,
            "parse": {"en": latency, "zh": latency},
        }

    rows = {
        cells[0]: cells[1:]
        for line in table(figures(0.5), figures(1.0)).splitlines()
        if (cells := [c.strip() for c in line.strip("|").split("|")])
    }

    assert rows["`Agent.load` (s)"] == ["2.0", "4.0", "0.50"]
    assert rows["RSS after load (MiB)"] == ["500", "1,000", "0.50"]
    assert rows["parse p90 zh (ms)"] == ["10.0", "20.0", "0.50"]
    assert "reference" not in table(figures(1.0), None)
