"""What the web chat and the agent console share inside one Rasa server process.

- :class:`LiveChat` pushes a message to every browser tab of a web chat conversation (the
  socket.io room of its sender id); the agent console uses it to reach the customer.
- :func:`append_bot_message` writes a message that did not come from a bot prediction (an agent's
  reply, the "you are back with Kefu" note) into the tracker, under the conversation's lock, so
  the transcript, the history a reloaded page shows and the event broker all see it.
- :func:`chat_history` turns tracker events into the messages a chat page or console shows.

Rasa runs one Sanic worker by default; with several workers or servers, a push reaches only the
tabs connected to the same process (the message is still in the tracker and appears on reload).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rasa.shared.core.events import BotUttered, Event, UserUttered

from contract import frustration_of

#: BotUttered metadata key naming the human agent who wrote a message.
AGENT_KEY = "kefu_agent"
#: Tracker sender ids of web chat conversations start with this (REST ids cannot be confused).
WEB_SENDER_PREFIX = "web-"
BOT_EVENT = "bot_uttered"


class LiveChat:
    """The socket.io server of the web chat, once the channel has started."""

    def __init__(self) -> None:
        self.sio = None

    def attach(self, sio) -> None:
        self.sio = sio

    async def push(self, sender_id: str, message: dict[str, Any]) -> bool:
        """Emit ``message`` to the browser tabs of ``sender_id``; False when no web chat runs."""
        if self.sio is None or not sender_id.startswith(WEB_SENDER_PREFIX):
            return False
        await self.sio.emit(BOT_EVENT, message, room=sender_id)
        return True


#: The process's web chat (one Rasa server process serves one web chat channel).
live_chat = LiveChat()


async def append_bot_message(
    agent,
    sender_id: str,
    text: str,
    *,
    data: dict | None = None,
    metadata: dict | None = None,
    before: Iterable[Event] = (),
    after: Iterable[Event] = (),
) -> dict[str, Any]:
    """Record a bot-side message that no policy predicted and return it as the page shows it.

    Args:
        agent: the Rasa ``Agent`` of the server (``app.ctx.agent``).
        sender_id: the conversation.
        text: what the customer reads.
        data: BotUttered data (buttons, custom payloads).
        metadata: BotUttered metadata (e.g. ``{AGENT_KEY: "Anna"}``).
        before: events to append just before the message, in the same locked update.
        after: events to append just after it.
    """
    event = BotUttered(text, data=data or {}, metadata=metadata or {})
    await append_events(agent, sender_id, [*before, event, *after])
    return _bot_message(event)


async def append_events(agent, sender_id: str, events: list[Event]) -> None:
    """Append events to a conversation's tracker under its lock and save it."""
    async with agent.lock_store.lock(sender_id):
        tracker = await agent.processor.get_tracker(sender_id)
        for event in events:
            tracker.update(event)
        await agent.tracker_store.save(tracker)


def _bot_message(event: BotUttered) -> dict[str, Any]:
    data = event.data or {}
    message: dict[str, Any] = {"role": "bot", "text": event.text or ""}
    agent_name = (event.metadata or {}).get(AGENT_KEY)
    if agent_name:
        message["role"] = "agent"
        message["agent"] = agent_name
    if data.get("buttons"):
        message["quick_replies"] = [
            {"title": b.get("title", ""), "payload": b.get("payload", "")} for b in data["buttons"]
        ]
    if data.get("custom"):
        message["custom"] = data["custom"]
    return message


def chat_history(events, limit: int = 100) -> list[dict[str, Any]]:
    """The last ``limit`` customer / bot / agent messages of a tracker, oldest first.

    User messages carry their frustration score; bot messages their buttons and cards.
    """
    messages: list[dict[str, Any]] = []
    for event in events:
        if isinstance(event, UserUttered):
            text = event.text or ""
            if text.startswith("/"):  # a button payload: the button's title was shown instead
                continue
            messages.append(
                {
                    "role": "user",
                    "text": text,
                    "frustration": round(frustration_of(event.parse_data), 3),
                    "timestamp": event.timestamp,
                }
            )
        elif isinstance(event, BotUttered) and (event.text or (event.data or {}).get("custom")):
            message = _bot_message(event)
            message["timestamp"] = event.timestamp
            messages.append(message)
    return messages[-limit:]
