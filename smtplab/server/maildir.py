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
import warnings
from pathlib import Path

from smtplab.server.store import Store, StoredMessage

_NAME = re.compile(r"(\d+)\.M(\d{6})Q([0-9A-Z]+)\.")


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

    def new_id(self, session: str, time: float) -> str:
        """As :meth:`Store.new_id`, but never an id a file in this Maildir already has (two
        stores may share a directory)."""
        while True:
            queue_id = super().new_id(session, time)
            if not any(self.path.glob(f"*/*Q{queue_id}.*")):
                return queue_id
            self._delivered += 1

    def _keep(self, message: StoredMessage) -> None:
        seconds, micros = divmod(round(message.time * 1e6), 1_000_000)
        name = f"{seconds}.M{micros:06d}Q{message.id}.{self.hostname}"
        envelope = [f"Return-Path: <{message.mail_from}>"]
        envelope += [f"Delivered-To: {rcpt}" for rcpt in message.recipients]
        if message.mail_params:
            envelope.append(f"X-Smtplab-Mail-Params: {_params_text(message.mail_params)}")
        for rcpt, params in message.rcpt_params.items():
            envelope.append(f"X-Smtplab-Rcpt-Params: <{rcpt}> {_params_text(params)}")
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
        try:
            _fsync_directory(new.parent)
        except OSError as error:  # the message is in new/ already: a 451 now would duplicate it
            warnings.warn(f"Maildir {self.path}: fsync of new/ failed: {error}", stacklevel=2)


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _parse(data: bytes, queue_id: str, time: float) -> StoredMessage:
    """A stored file back into a :class:`StoredMessage`: the envelope block off the top.

    The block is exactly what :meth:`MaildirStore._keep` writes - ``Return-Path``, one
    ``Delivered-To`` per recipient, the ESMTP parameters if any (``X-Smtplab-Mail-Params``,
    ``X-Smtplab-Rcpt-Params``), then ``X-Smtplab-Session`` last - so header fields of the
    message itself, whatever they are called, are never taken for the envelope.
    """
    lines = data.split(b"\r\n")
    index, mail_from, recipients, session = 0, "", [], ""
    mail_params: dict[str, str | None] = {}
    rcpt_params: dict[str, dict[str, str | None]] = {}

    def field_is(name: bytes) -> bool:
        return index < len(lines) and lines[index].lower().startswith(name + b":")

    if lines and lines[0].lower().startswith(b"return-path:"):
        mail_from = _value(lines[0]).strip("<>")
        index = 1
        while field_is(b"delivered-to"):
            recipients.append(_value(lines[index]))
            index += 1
        if field_is(b"x-smtplab-mail-params"):
            mail_params = _params(_value(lines[index]))
            index += 1
        while field_is(b"x-smtplab-rcpt-params"):
            # "<address> NAME=value ...": parameters hold no spaces, so the last "> " closes
            # the address even when a quoted local part has one.
            rcpt, _, text = _value(lines[index]).rpartition("> ")
            rcpt_params[rcpt[1:]] = _params(text)
            index += 1
        if field_is(b"x-smtplab-session"):
            session = _value(lines[index])
            index += 1
        else:  # not our envelope block after all: keep the file whole
            index, mail_from, recipients, mail_params, rcpt_params = 0, "", [], {}, {}
    content = b"\r\n".join(lines[index:])
    return StoredMessage(
        queue_id, mail_from, tuple(recipients), content, time, session, mail_params, rcpt_params
    )


def _value(line: bytes) -> str:
    return line.partition(b":")[2].strip().decode("utf-8", "replace")


def _params_text(params: dict[str, str | None]) -> str:
    """ESMTP parameters as sent: ``SIZE=120 SMTPUTF8`` (values never hold spaces)."""
    return " ".join(name if value is None else f"{name}={value}" for name, value in params.items())


def _params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for word in text.split():
        name, equals, value = word.partition("=")
        params[name] = value if equals else None
    return params
