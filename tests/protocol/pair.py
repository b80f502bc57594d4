"""A client engine and a server engine wired together, with no policy, session or recorder.

The test plays both applications: it tells the client what to send and the server what to
answer, and sees the bytes on the wire and the events each engine makes of them. So a table
row can say "this call gives these bytes, which the other side reads as this event", and
nothing between the two engines can hide a difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smtplab.protocol import (
    NEED_DATA,
    PAUSED,
    ClientConnection,
    Event,
    Reply,
    ReplyReceived,
    ServerConfig,
    ServerConnection,
)


@dataclass
class ConnectionPair:
    """``client`` and ``server`` engines; :attr:`wire` holds every transfer, in order."""

    config: ServerConfig = field(default_factory=ServerConfig)
    client: ClientConnection = field(default_factory=ClientConnection)
    server: ServerConnection = field(init=False)
    wire: list[tuple[str, bytes]] = field(default_factory=list)  # ("C" or "S", octets)

    def __post_init__(self) -> None:
        self.server = ServerConnection(self.config)

    def to_server(self) -> list[Event]:
        """Move what the client queued to the server; the events the server makes of it (see
        :meth:`events`)."""
        data = self.client.data_to_send()
        self.wire.append(("C", data))
        self.server.receive_data(data)
        return self.events()

    def events(self) -> list[Event]:
        """The server's events up to the first that waits for an application's reply (or
        until it needs more data). An event whose ``error`` holds the reply the protocol
        requires is answered with it, as every driver does, and reading goes on."""
        events = []
        while (event := self.server.next_event()) not in (NEED_DATA, PAUSED):
            events.append(event)
            error = getattr(event, "error", None)
            if error is None:
                break
            self.server.send(error)
        return events

    def answer(self, reply: Reply) -> list[ReplyReceived]:
        """The server sends ``reply`` (to its oldest owed event); what the client reads."""
        self.server.send(reply)
        return self.to_client()

    def to_client(self) -> list[ReplyReceived]:
        data = self.server.data_to_send()
        self.wire.append(("S", data))
        self.client.receive_data(data)
        events = []
        while isinstance(event := self.client.next_event(), ReplyReceived):
            events.append(event)
        return events

    def greet(self, text: str = "mx.example.org ESMTP") -> ReplyReceived:
        """The server's 220 and the client reading it."""
        (event,) = self.answer(Reply(220, text))
        return event

    def ready(self, ehlo_reply: str = "mx.example.org\nPIPELINING\n8BITMIME\nCHUNKING") -> None:
        """Greeting and EHLO done: both engines in the READY state."""
        self.greet()
        self.client.ehlo("client.example.net")
        self.to_server()
        self.answer(Reply(250, ehlo_reply))

    def last_sent(self, side: str) -> bytes:
        return next(data for who, data in reversed(self.wire) if who == side)
