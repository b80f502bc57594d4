"""The transcript schema: one row per protocol unit, shared by live sessions and captured logs.

Every source (in-process lab, TCP, and later pcap, Postfix logs, swaks transcripts) produces
rows with exactly these columns and dtypes, so every analysis, plot and widget works on all of
them. A source fills what it knows and leaves the rest missing (NA), never invented.

Two columns go beyond the project's first sketch of the schema, because a data block is a
protocol unit of its own and its size is what transaction tables need: ``size`` (octets of the
message as the server received it, after dot-stuffing is undone) and ``lines`` (its line count).
Both are filled on ``data`` rows, and on ``BDAT`` command rows for the chunk that followed
the command (RFC 3030: a chunk is framed by its command, so it has no row of its own; the
row's ``text`` holds the chunk's first lines, as a data row's does).
"""

from __future__ import annotations

import pyarrow as pa

#: column name -> pandas dtype, in column order.
COLUMNS: dict[str, str] = {
    "session": "category",  # session id, stable and human-readable
    "seq": "int64",  # order within the session, from 0
    "time": "datetime64[ns, UTC]",  # when the unit was sent or seen
    "sender": "category",  # "client" or "server"
    "kind": "category",  # connect, command, reply, data, tls, close, note
    "verb": "category",  # command verb; on a reply, the verb it answers
    "argument": "string",  # the rest of the command line
    "code": "Int16",  # reply code, on replies
    "enhanced": "category",  # enhanced status code (RFC 3463), when present
    "text": "string",  # reply text (lines joined by \n); first lines of a data block
    "reply_to": "Int32",  # on a reply, the seq of the unit it answers
    "latency": "float64",  # seconds from that unit to its reply
    "source": "category",  # lab, tcp, pcap, postfix, swaks, smtplib, ...
    "client": "category",  # client endpoint, host:port where known
    "server": "category",  # server endpoint, host:port where known
    "tls": "boolean",  # the unit travelled under TLS
    "size": "Int64",  # octets of a data block, or of the chunk after a BDAT command
    "lines": "Int32",  # lines of a data block (or BDAT chunk)
}

_CATEGORY = pa.dictionary(pa.int32(), pa.string())
#: The same columns as Arrow types: the form a transcript takes in a Parquet file or dataset.
#: A category is a dictionary of strings with 32-bit indices (a batch with many sessions fits
#: as well as one with few); times are nanoseconds in UTC; nullable integers keep their width.
ARROW_SCHEMA = pa.schema(
    [
        ("session", _CATEGORY),
        ("seq", pa.int64()),
        ("time", pa.timestamp("ns", tz="UTC")),
        ("sender", _CATEGORY),
        ("kind", _CATEGORY),
        ("verb", _CATEGORY),
        ("argument", pa.string()),
        ("code", pa.int16()),
        ("enhanced", _CATEGORY),
        ("text", pa.string()),
        ("reply_to", pa.int32()),
        ("latency", pa.float64()),
        ("source", _CATEGORY),
        ("client", _CATEGORY),
        ("server", _CATEGORY),
        ("tls", pa.bool_()),
        ("size", pa.int64()),
        ("lines", pa.int32()),
    ]
)
assert ARROW_SCHEMA.names == list(COLUMNS), "the two forms of the schema name the same columns"

KINDS = ("connect", "command", "reply", "data", "tls", "close", "note")
SENDERS = ("client", "server")


def endpoint(address: tuple) -> str:  # type: ignore[type-arg]
    """An address as the ``client``/``server`` columns write it: ``host:port``, or
    ``[host]:port`` for IPv6; ``host`` (``[host]``) alone when the port is None (not known).

    ``address`` is a socket address (``(host, port)``, or IPv6's four fields), or a host and
    port as a log or transcript writes them (strings). Every reader of live traffic, logs and
    transcripts writes endpoints with this function, so that they compare equal across sources.
    """
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"
