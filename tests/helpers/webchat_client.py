"""A socket.io client of the web chat, speaking its events as the page does (integration and
security tests)."""

from __future__ import annotations

import asyncio

import socketio

QUIET_S = 2.5  # a turn is over when no message came for this long


class ChatClient:
    """A socket.io client speaking the web chat's events, as the page does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.inbox: asyncio.Queue = asyncio.Queue()
        for event in ("session_confirm", "identity", "history", "bot_uttered", "kefu_error"):
            self.sio.on(event, self._collector(event))

    def _collector(self, event: str):
        async def collect(data=None):
            await self.inbox.put((event, data))

        return collect

    async def next(self, timeout: float = 60.0) -> tuple[str, object]:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def open(
        self, session_id: str | None = None, token: str | None = None, headers=None
    ) -> dict:
        if not self.sio.connected:
            await self.sio.connect(
                self.url, socketio_path="/socket.io", transports=["polling"], headers=headers
            )
        await self.sio.emit(
            "session_request", {"session_id": session_id, "customData": {"customer_token": token}}
        )
        got = {}
        while len(got) < 3:
            event, data = await self.next()
            got[event] = data
        return got

    async def say(self, text: str, *, expect_reply: bool = True) -> list[dict]:
        """Send a message; the replies that came until the conversation went quiet."""
        await self.sio.emit("user_uttered", {"message": text})
        return await self.collect(expect_reply=expect_reply)

    async def collect(self, *, expect_reply: bool = True) -> list[dict]:
        replies = []
        timeout = 90.0 if expect_reply else QUIET_S
        while True:
            try:
                event, data = await self.next(timeout)
            except asyncio.TimeoutError:
                break
            replies.append({"event": event, **(data if isinstance(data, dict) else {})})
            timeout = QUIET_S
        if expect_reply:
            assert replies, "no reply"
        return replies

    async def close(self) -> None:
        await self.sio.disconnect()
