"""Records ``tests/analytics/bot_conversations.jsonl`` from the real Kefu (the trained model).

Run ``.venv/bin/python -m tests.analytics.record_from_bot`` (needs ``models/kefu.tar.gz``; starts
scripts/serve.py on a freshly seeded commerce database, a few minutes on a laptop).

Kefu runs as in the integration tests (tests/helpers/kefu_server.py): the masking SQL tracker
store and Rasa's SQL event broker; the customer talks over REST, an agent answers a handoff
through the console API, and the lines written are the broker's bodies in the order they were
published — exactly what the RabbitMQ consumer receives in production. The seed's accounts are
those of docs/SEED.md.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
import urllib.request
from pathlib import Path

from commerce.__main__ import main as commerce_main
from commerce.__main__ import upgrade
from commerce.db import make_engine
from commerce.seed import seed
from tests.helpers.kefu_server import code_sent_to, running_kefu

OUT = Path(__file__).with_name("bot_conversations.jsonl")
RATE_5 = '/inform{"rating": "5"}'
RATE_4 = '/inform{"rating": "4"}'


def console(kefu, token: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{kefu.url}/webhooks/agent/api{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=60) as reply:  # noqa: S310 - localhost
        return json.loads(reply.read())


def converse(kefu, sender: str, turns: list[str], outbox: Path | None = None) -> None:
    for text in turns:
        replies = kefu.say(sender, text)
        print(f"  {sender} > {text}\n  {sender} < {' | '.join(replies)}")
        if outbox is not None and "@" in text:
            code = code_sent_to(outbox, text)
            print(f"  {sender} > {code}\n  {sender} < {' | '.join(kefu.say(sender, code))}")


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kefu-analytics-recording-"))
    url = f"sqlite:///{tmp / 'kefu.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed(engine)
    engine.dispose()
    token_file = tmp / "anna.token"
    assert (
        commerce_main(["agent", "add", "anna", "--token-file", str(token_file), "--url", url]) == 0
    )
    token = token_file.read_text().strip()
    outbox = tmp / "outbox.log"
    env = {
        "KEFU_DATABASE_URL": url,
        "KEFU_OUTBOX_LOG": str(outbox),
        "KEFU_SMTP_HOST": "",
        "KEFU_RATE_PER_CLIENT": "1000",
        "KEFU_AGENT_TOKEN_FILE": str(tmp / "demo-agent-token"),
    }
    with running_kefu(tmp, **env) as kefu:
        converse(
            kefu,
            "bot-en-status",
            ["hi", "where is my order?", "KF-100004", "alice@example.com", RATE_5],
        )
        converse(
            kefu,
            "bot-zh-cancel",
            ["取消订单", "KF-200001", "wang.fang@example.cn", "是的", RATE_4],
            outbox,
        )
        converse(kefu, "bot-zh-stock", ["基础纯棉T恤M码有货吗", "谢谢"])
        converse(
            kefu,
            "bot-en-faq",
            ["what is your return policy?", "how long does shipping take?", "bye"],
        )
        converse(
            kefu,
            "bot-en-fallback",
            ["blorp snazzle wibble", "/out_of_scope", "where is my order?", "never mind"],
        )
        converse(kefu, "bot-en-handoff", ["i want to talk to a human"])
        queue = console(kefu, token, "GET", "/queue")
        [entry] = [e for e in queue["waiting"] if e["conversation_id"] == "bot-en-handoff"]
        console(kefu, token, "POST", f"/handoffs/{entry['handoff_id']}/claim")
        time.sleep(3)
        console(
            kefu,
            token,
            "POST",
            f"/handoffs/{entry['handoff_id']}/reply",
            {"text": "Hi, Anna here. How can I help?"},
        )
        converse(kefu, "bot-en-handoff", ["my parcel is late"])
        console(kefu, token, "POST", f"/handoffs/{entry['handoff_id']}/handback")
        # Written before the servers stop (a slow shutdown must not lose the recording).
        with sqlite3.connect(kefu.broker_db) as conn:
            rows = conn.execute("SELECT data FROM events ORDER BY id").fetchall()
        with OUT.open("w", encoding="utf-8") as f:
            for (data,) in rows:
                f.write(json.dumps(json.loads(data), ensure_ascii=False) + "\n")
        print(f"wrote {len(rows)} events to {OUT} (servers' files in {tmp})")


if __name__ == "__main__":
    main()
