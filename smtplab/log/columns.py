"""Transcript rows of many sessions kept column by column: the fast path for server logs.

:class:`~smtplab.log.recorder.Recorder` keeps one tuple of all 18 fields per row, which suits a
live session. A log of a busy server makes hundreds of thousands of rows in which most fields
are missing or the same for a whole session, so :class:`LogColumns` keeps only what varies:
per row its session's number, its time and its *shape* (sender, kind and verb, of which a log
has a few dozen), and the few other fields by row number where a row has them. The session's
own fields (client, server, from which row on TLS was up) are kept once per session. Texts
and arguments are bounded as the recorder bounds them (:mod:`smtplab.log.limits`).

A log interleaves its sessions' lines, so rows are added in the order the log tells them;
:meth:`LogColumns.to_frame` orders them by session (stably: a session's rows keep their order,
which is the order the recorder would have numbered them in), numbers them and builds each
typed column at once from numpy arrays. The frame equals what
:func:`~smtplab.log.frame.to_frame` makes of the same rows as recorder tuples;
:meth:`LogColumns.tuples` gives those tuples, for a transcript that mixes sources.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from smtplab.log.frame import empty_frame, nullable_integers, time_column
from smtplab.log.limits import MAX_ARGUMENT, MAX_TEXT, clip
from smtplab.log.schema import COLUMNS
from smtplab.protocol.commands import redact_command
from smtplab.protocol.states import Step

#: (sender, kind, verb) of a row.
Shape = tuple[str, str, str | None]
_NEVER = np.iinfo(np.int64).max  # a session's first TLS row, while TLS has not started


class LogColumns:
    """Rows of many sessions from one source (see the module docstring)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._names: list[str] = []  # by session number: session id
        self._clients: list[str | None] = []
        self._servers: list[str | None] = []
        self._tls_from: list[int] = []  # by session number: the row TLS started at, or _NEVER
        # One entry per row, in the order added:
        self._session: list[int] = []
        self._time: list[float | None] = []
        self._shape: list[int] = []
        self._shapes: dict[Shape, int] = {}
        # The fields only some rows have, by row (in the order added):
        self._argument: dict[int, str] = {}
        self._text: dict[int, str] = {}
        self._replies: list[tuple[int, int, str | None, bool]] = []  # row, code, enhanced, paired
        self._connect = self.shape("client", "connect", Step.CONNECT)
        self._note = self.shape("server", "note")
        self._by_verb: dict[tuple[str, str], int] = {}  # (kind, verb) -> a command's or reply's
        self._counted_shapes: dict[tuple[str, ...], list[int]] = {}

    def __len__(self) -> int:
        return len(self._shape)

    def shape(self, sender: str, kind: str, verb: str | None = None) -> int:
        """The number of a row shape, made on first use."""
        return self._shapes.setdefault((sender, kind, verb), len(self._shapes))

    def session(self, name: str, client: str | None = None, server: str | None = None) -> int:
        """A new session; its number, for the methods that add rows."""
        self._names.append(name)
        self._clients.append(client)
        self._servers.append(server)
        self._tls_from.append(_NEVER)
        return len(self._names) - 1

    def _add(self, session: int, time: float | None, shape: int) -> int:
        row = len(self._shape)
        self._session.append(session)
        self._time.append(time)
        self._shape.append(shape)
        return row

    def _verb_shape(self, kind: str, verb: str) -> int:
        shape = self._by_verb.get((kind, verb))
        if shape is None:
            sender = "server" if kind == "reply" else "client"
            shape = self._by_verb[kind, verb] = self.shape(sender, kind, verb)
        return shape

    # -- the rows, as :class:`~smtplab.log.recorder.Recorder` would make them -------------------

    def connect(self, session: int, time: float | None) -> None:
        """The connection opened (the source does not show the greeting: no reply awaited)."""
        self._add(session, time, self._connect)

    def command(self, session: int, time: float | None, verb: str, argument: str) -> None:
        """A command whose reply is the next :meth:`reply` with ``paired`` (the recorder's
        pairing, when every command is answered before the next one is sent)."""
        verb, argument = redact_command(verb, argument)
        row = self._add(session, time, self._verb_shape("command", verb))
        self._argument[row] = clip(argument, MAX_ARGUMENT)

    def counted(self, session: int, time: float | None, verbs: tuple[str, ...]) -> None:
        """Commands known only from a count, one row each: no argument, no reply awaited."""
        shapes = self._counted_shapes.get(verbs)
        if shapes is None:
            shapes = [self._verb_shape("command", verb) for verb in verbs]
            self._counted_shapes[verbs] = shapes
        count = len(shapes)
        self._session += [session] * count
        self._time += [time] * count
        self._shape += shapes

    def reply(
        self,
        session: int,
        time: float | None,
        verb: str,
        code: int,
        enhanced: str | None,
        text: str,
        paired: bool,
    ) -> None:
        """A reply; ``paired``: it answers the command added just before it in the session."""
        row = self._add(session, time, self._verb_shape("reply", verb))
        self._text[row] = clip(text, MAX_TEXT)
        self._replies.append((row, code, enhanced, paired))

    def tls_started(self, session: int, time: float | None, text: str) -> None:
        """TLS is on from here: this and every later row of the session has ``tls``."""
        row = self._add(session, time, self.shape("server", "tls"))
        self._text[row] = clip(text, MAX_TEXT)
        if self._tls_from[session] == _NEVER:
            self._tls_from[session] = row

    def close(self, session: int, time: float | None, sender: str, text: str) -> None:
        """The connection closed; ``sender`` is the side that closed it."""
        row = self._add(session, time, self.shape(sender, "close"))
        if text:
            self._text[row] = clip(text, MAX_TEXT)

    def note(self, session: int, time: float | None, text: str, sender: str = "server") -> None:
        """Something worth knowing that is not a protocol unit."""
        row = len(self._shape)  # _add, inline: a log has more notes than any other row
        self._session.append(session)
        self._time.append(time)
        self._shape.append(self._note if sender == "server" else self.shape(sender, "note"))
        self._text[row] = text if len(text) <= MAX_TEXT else clip(text, MAX_TEXT)

    # -- out -----------------------------------------------------------------------------------

    def _layout(self) -> tuple[Any, Any, Any, Any]:
        """``order`` (rows by session, stably), and for the rows in that order: the session
        number, seq, and each added row's place in the order."""
        sessions = np.array(self._session, dtype=np.intp)
        order = np.argsort(sessions, kind="stable")
        sessions = sessions[order]
        counts = np.bincount(sessions, minlength=len(self._names))
        starts = np.cumsum(counts) - counts
        seq = np.arange(len(sessions)) - starts[sessions]
        place = np.empty_like(order)
        place[order] = np.arange(len(order))
        return order, sessions, seq, place

    def to_frame(self) -> pd.DataFrame:
        """The transcript DataFrame of every row (see the module docstring)."""
        count = len(self._shape)
        if not count:
            return empty_frame()
        order, sessions, seq, place = self._layout()
        columns: dict[str, Any] = {}
        columns["session"] = _categorical(np.array(self._names, dtype=object), sessions)
        columns["seq"] = seq.astype(np.int64)
        times = np.array(self._time, dtype="float64")[order]
        columns["time"] = time_column(times)
        shapes = np.array(self._shape, dtype=np.intp)[order]
        by_shape = sorted(self._shapes, key=self._shapes.__getitem__)
        for field, name in enumerate(("sender", "kind", "verb")):
            values = np.array([shape[field] for shape in by_shape], dtype=object)
            columns[name] = _categorical(values, shapes)
        columns["argument"] = _sparse("argument", count, self._argument, place)
        rows = place[np.array([reply[0] for reply in self._replies], dtype=np.intp)]
        missing = np.ones(count, dtype=bool)
        missing[rows] = False
        codes = np.zeros(count, dtype=np.int64)
        codes[rows] = [reply[1] for reply in self._replies]
        columns["code"] = nullable_integers("code", codes, missing, COLUMNS["code"])
        enhanced = {reply[0]: reply[2] for reply in self._replies if reply[2] is not None}
        columns["enhanced"] = _sparse("enhanced", count, enhanced, place)
        columns["text"] = _sparse("text", count, self._text, place)
        # A paired reply answers the row just before it, sent at the time of that row.
        paired = rows[np.array([reply[3] for reply in self._replies], dtype=bool)]
        unpaired = np.ones(count, dtype=bool)
        unpaired[paired] = False
        reply_to = np.zeros(count, dtype=np.int64)
        reply_to[paired] = seq[paired] - 1
        columns["reply_to"] = nullable_integers("reply_to", reply_to, unpaired, "Int32")
        latency = np.full(count, np.nan)
        latency[paired] = times[paired] - times[paired - 1]
        columns["latency"] = np.round(latency, 6)
        columns["source"] = _categorical(np.array([self.source], dtype=object), np.zeros(count))
        columns["client"] = _taken("client", self._clients, sessions)
        columns["server"] = _taken("server", self._servers, sessions)
        tls = np.arange(count) >= np.array(self._tls_from, dtype=np.int64)[self._session]
        columns["tls"] = pd.arrays.BooleanArray(tls[order], np.zeros(count, dtype=bool))
        nothing, everywhere = np.zeros(count, dtype=np.int64), np.ones(count, dtype=bool)
        columns["size"] = nullable_integers("size", nothing, everywhere, "Int64")
        columns["lines"] = nullable_integers("lines", nothing, everywhere, "Int32")
        return pd.DataFrame({name: columns[name] for name in COLUMNS}, copy=False)

    def tuples(self) -> list[tuple]:  # type: ignore[type-arg]
        """The rows as recorder tuples (the fields of :class:`~smtplab.log.recorder.Row`), in
        the frame's order: for a transcript that mixes this source with others."""
        if not self._shape:
            return []
        order, sessions, seq, _ = self._layout()
        replies = {reply[0]: reply for reply in self._replies}
        by_shape = sorted(self._shapes, key=self._shapes.__getitem__)
        rows = []
        for row, session, number in zip(
            order.tolist(), sessions.tolist(), seq.tolist(), strict=True
        ):
            sender, kind, verb = by_shape[self._shape[row]]
            time = self._time[row]
            code = enhanced = reply_to = latency = None
            if row in replies:
                _, code, enhanced, paired = replies[row]
                if paired:
                    reply_to, asked = number - 1, self._time[row - 1]
                    latency = time - asked if time is not None and asked is not None else None
            rows.append(
                (self._names[session], number, time, sender, kind, verb,
                 self._argument.get(row), code, enhanced, self._text.get(row), reply_to,
                 latency, self.source, self._clients[session], self._servers[session],
                 row >= self._tls_from[session], None, None)
            )  # fmt: skip
        return rows


def _categorical(values: Any, codes: Any) -> pd.Categorical:
    """The categorical column ``values[codes]`` (``values``: an object array, None for missing)
    with its categories sorted, as :func:`~smtplab.log.frame.to_frame` makes them."""
    codes = np.asarray(codes, dtype=np.intp)
    used = np.flatnonzero(np.bincount(codes, minlength=len(values)))
    categories = sorted({values[index] for index in used} - {None})
    position = {value: number for number, value in enumerate(categories)}
    recode = np.array([position.get(value, -1) for value in values], dtype=np.intp)
    return pd.Categorical.from_codes(recode[codes], categories=np.array(categories, dtype=object))


def _strings(values: list[str | None], rows: Any) -> Any:
    """The string column ``values[rows]`` (None: missing).

    Checking and converting each value is the costly part of a string column: only ``values``
    are, and the rows are taken from them, as a numpy take.
    """
    return pd.array(np.array(values, dtype=object), dtype="string").take(rows)


def _taken(name: str, values: list[str | None], rows: Any) -> Any:
    """The column ``name`` as ``values[rows]``, in the schema's dtype (string or category)."""
    if COLUMNS[name] == "category":
        return _categorical(np.array(values, dtype=object), rows)
    return _strings(values, rows)


def _sparse(name: str, count: int, values: dict[int, str], place: Any) -> Any:
    """The column ``name`` of ``count`` rows with ``values`` by added row, missing elsewhere."""
    taken = np.full(count, len(values), dtype=np.intp)  # the last of the values: missing
    taken[place[np.fromiter(values, dtype=np.intp, count=len(values))]] = np.arange(len(values))
    return _taken(name, [*values.values(), None], taken)
