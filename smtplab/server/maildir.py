"""A Maildir message store on disk: atomic delivery, readable by any mail tool.

Delivery follows the Maildir rule that makes it safe without locks: the message is written
to ``tmp/`` under a unique name, flushed to disk (``fsync``), and only then renamed into
``new/`` - one atomic step, so a reader sees a message whole or not at all, and a crash
leaves at most a stray file in ``tmp/``, which readers ignore. The directory is fsynced too,
so the rename itself survives a power cut. If any step fails the temporary file is removed
and the error propagates: the server then answers 451 instead of 250.

Each file holds the envelope as header fields above the message, as a delivery agent writes
them (``Return-Path:`` as RFC 5321 4.4 asks of final delivery, one ``Delivered-To:`` per
recipient, the queue id and the lab session), followed by the ``Received:`` line and the
message. Reading uses the standard library's :class:`mailbox.Maildir`.

File names follow the Maildir specification (https://cr.yp.to/proto/maildir.html):
``<seconds>.M<microseconds>P<pid>Q<n>.<host>``, where the time is the message's (the lab's
virtual clock in-process, the wall clock over TCP), ``P`` the process id and ``Q`` the
number of deliveries this process has made, so a name is unique without looking at what
is already in the directory: delivering never lists it, however many files it holds. Queue
ids are made the same way (process id and delivery count, hashed). Should a name still be
taken (a stray file from a crash in an earlier process with the same id), ``O_EXCL`` says so
and the message gets 451, never an overwrite.
"""

from __future__ import annotations

import hashlib
import itertools
import mailbox
import os
import re
import warnings
from pathlib import Path

from smtplab.server.store import Store, StoredMessage

#: ``<seconds>.M<micros>P<pid>Q<n>.<host>``; the name before 2026-12 (``Q<queue id>``) too.
_NAME = re.compile(r"(\d+)\.M(\d{6})(?:P(\d+)Q(\d+)|Q([0-9A-Z]+))\.")
#: Deliveries made by this process (the Maildir specification's ``Q``), over all stores.
_deliveries = itertools.count(1)
#: Queue ids made by this process, over all stores (two stores may share a directory).
_queue_ids = itertools.count(1)


class MaildirStore(Store):
    """Delivers into a Maildir (created if missing); lists what is in it."""

    def __init__(self, path: str | os.PathLike[str], hostname: str = "smtplab") -> None:
        super().__init__()
        self.path = Path(path)
        self.hostname = hostname
        for sub in ("tmp", "new", "cur"):  # nothing is listed or read: that is for `messages`
            os.makedirs(self.path / sub, exist_ok=True)

    @property
    def messages(self) -> list[StoredMessage]:
        """Every message in ``new/`` and ``cur/`` that this store's naming recognises.

        This lists and reads the whole Maildir (for a notebook looking at what it holds); the
        server itself never calls it.
        """
        maildir = mailbox.Maildir(self.path, factory=None, create=False)
        found = []
        for key in maildir.iterkeys():
            match = _NAME.match(key)
            if match is not None:
                order = (int(match[1]), int(match[2]), int(match[3] or 0), int(match[4] or 0))
                found.append((order, key, match[5] or ""))
        found.sort()
        return [
            _parse(_read(maildir, key), queue_id, seconds + micros / 1e6)
            for (seconds, micros, _, _), key, queue_id in found
        ]

    def new_id(self, session: str, time: float) -> str:
        """A short id, unique without listing the Maildir: a hash of this process's id and
        its count of ids made (two stores, or two processes, may share a directory)."""
        seed = f"{os.getpid()}/{next(_queue_ids)}/{session}/{time}/{self.hostname}".encode()
        return hashlib.sha1(seed).hexdigest()[:10].upper()

    def _keep(self, message: StoredMessage) -> None:
        seconds, micros = divmod(round(message.time * 1e6), 1_000_000)
        name = f"{seconds}.M{micros:06d}P{os.getpid()}Q{next(_deliveries)}.{self.hostname}"
        envelope = [f"Return-Path: <{message.mail_from}>"]
        envelope += [f"Delivered-To: {rcpt}" for rcpt in message.recipients]
        if message.mail_params:
            envelope.append(f"X-Smtplab-Mail-Params: {_params_text(message.mail_params)}")
        for rcpt, params in message.rcpt_params.items():
            envelope.append(f"X-Smtplab-Rcpt-Params: <{rcpt}> {_params_text(params)}")
        envelope.append(f"X-Smtplab-Queue-Id: {message.id}")
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


def _read(maildir: mailbox.Maildir, key: str) -> bytes:
    with maildir.get_file(key) as file:  # raw bytes (get_bytes translates line ends)
        return file.read()


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
    ``X-Smtplab-Rcpt-Params``), the queue id (``X-Smtplab-Queue-Id``; older files have it in
    their name: ``queue_id``), then ``X-Smtplab-Session`` last - so header fields of the
    message itself, whatever they are called, are never taken for the envelope.
    """
    lines = data.split(b"\r\n")
    index, mail_from, recipients, session, named = 0, "", [], "", queue_id
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
        if field_is(b"x-smtplab-queue-id"):
            named = _value(lines[index])
            index += 1
        if field_is(b"x-smtplab-session"):
            session = _value(lines[index])
            index += 1
        else:  # not our envelope block after all: keep the file whole
            index, mail_from, recipients, mail_params, rcpt_params = 0, "", [], {}, {}
            named = queue_id
    content = b"\r\n".join(lines[index:])
    return StoredMessage(
        named, mail_from, tuple(recipients), content, time, session, mail_params, rcpt_params
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
