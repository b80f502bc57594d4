"""A Maildir message store on disk: atomic delivery, readable by any mail tool.

Delivery follows the Maildir rule that makes it safe without locks: the message is written
to ``tmp/`` under a unique name, flushed to disk (``fsync``), and only then renamed into
``new/`` - one atomic step, so a reader sees a message whole or not at all, and a crash
leaves at most a stray file in ``tmp/``, which readers ignore. The directory is fsynced too,
so the rename itself survives a power cut. If any step fails the temporary file is removed
and the error propagates: the server then answers 451 instead of 250.

Each file holds the envelope as header fields above the message, as a delivery agent writes
them (``Return-Path:`` as RFC 5321 4.4 asks of final delivery, one ``Delivered-To:`` per
recipient, and the lab session), followed by the ``Received:`` line and the message. File
names are ``<seconds>.M<microseconds>Q<queue id>.<host>`` with the lab's (virtual) time, so
a rerun of the same notebook writes the same names. Reading uses the standard library's
:class:`mailbox.Maildir`.
"""

from __future__ import annotations

import mailbox
import os
import re
from pathlib import Path

from smtplab.server.store import Store, StoredMessage

_NAME = re.compile(r"(\d+)\.M(\d{6})Q([0-9A-Z]+)\.")
_ENVELOPE_FIELDS = (b"return-path", b"delivered-to", b"x-smtplab-session")


class MaildirStore(Store):
    """Delivers into a Maildir (created if missing); lists what is in it."""

    def __init__(self, path: str | os.PathLike[str], hostname: str = "smtplab") -> None:
        super().__init__()
        self.path = Path(path)
        self.hostname = hostname
        self.maildir = mailbox.Maildir(self.path, factory=None, create=True)
        self._delivered = len(self.maildir)  # fresh ids go on from what is already there

    @property
    def messages(self) -> list[StoredMessage]:
        """Every message in ``new/`` and ``cur/`` that this store's naming recognises."""
        self.maildir = mailbox.Maildir(self.path, factory=None, create=False)  # rescan
        found = []
        for key in self.maildir.iterkeys():
            match = _NAME.match(key)
            if match is not None:
                found.append((int(match[1]), int(match[2]), key, match[3]))
        found.sort()
        return [
            _parse(self._read(key), queue_id, seconds + micros / 1e6)
            for seconds, micros, key, queue_id in found
        ]

    def _read(self, key: str) -> bytes:
        with self.maildir.get_file(key) as file:  # raw bytes (get_bytes translates line ends)
            return file.read()

    def _keep(self, message: StoredMessage) -> None:
        seconds, micros = divmod(round(message.time * 1e6), 1_000_000)
        name = f"{seconds}.M{micros:06d}Q{message.id}.{self.hostname}"
        envelope = [f"Return-Path: <{message.mail_from}>"]
        envelope += [f"Delivered-To: {rcpt}" for rcpt in message.recipients]
        envelope.append(f"X-Smtplab-Session: {message.session}")
        data = ("\r\n".join(envelope) + "\r\n").encode() + message.content
        tmp, new = self.path / "tmp" / name, self.path / "new" / name
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
            if new.exists():
                raise FileExistsError(f"{new} exists: two messages with one queue id")
            os.rename(tmp, new)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(new.parent)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _parse(data: bytes, queue_id: str, time: float) -> StoredMessage:
    """A stored file back into a :class:`StoredMessage`: envelope fields off the top."""
    mail_from, recipients, session = "", [], ""
    while True:
        line, sep, rest = data.partition(b"\r\n")
        name, colon, value = line.partition(b":")
        if not sep or not colon or name.lower() not in _ENVELOPE_FIELDS:
            break
        text = value.strip().decode("utf-8", "replace")
        if name.lower() == b"return-path":
            mail_from = text.strip("<>")
        elif name.lower() == b"delivered-to":
            recipients.append(text)
        else:
            session = text
        data = rest
    return StoredMessage(queue_id, mail_from, tuple(recipients), data, time, session)
