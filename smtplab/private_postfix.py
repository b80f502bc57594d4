"""A private Postfix: an instance of its own, started and stopped by the caller.

Tests, notebooks and the fixture-recording scripts compare smtplab with a real Postfix. They
never use the machine's own instance (its settings are not theirs, and changing them would
change the machine): :class:`PrivatePostfix` writes a ``main.cf`` and ``master.cf`` of its own
into a temporary directory, with its own queue, data directory, mail spool and log file, and
runs ``postfix -c DIR start`` on them. The instance listens on ``127.0.0.1`` only, on a port
of its own, delivers ``localhost`` mail into a mailbox file in that directory (nothing is
relayed anywhere), and ``stop()`` ends its master and removes the directory.

``postfix -c DIR`` operates on that instance only (postfix(1), ``MAIL_CONFIG``); nothing under
``/etc/postfix`` is read for settings or written. Starting Postfix needs root, as it does for
any instance: :func:`unavailable` says why one cannot be started here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

__all__ = ["PostfixError", "PrivatePostfix", "unavailable"]

POSTFIX = Path("/usr/sbin/postfix")
POSTCONF = Path("/usr/sbin/postconf")

# master.cf: one smtpd listener on the instance's own address, and the services a message
# needs on its way from smtpd to a local mailbox (cleanup, qmgr, trivial-rewrite, local),
# to be refused (bounce, error) and logged (postlogd). Nothing runs chrooted: the queue is
# a temporary directory with no chroot environment in it.
MASTER_CF = """\
# service  type  private unpriv chroot wakeup maxproc command
{address}  inet  n       -      n      -      -       smtpd
cleanup    unix  n       -      n      -      0       cleanup
qmgr       unix  n       -      n      300    1       qmgr
tlsmgr     unix  -       -      n      1000?  1       tlsmgr
rewrite    unix  -       -      n      -      -       trivial-rewrite
bounce     unix  -       -      n      -      0       bounce
defer      unix  -       -      n      -      0       bounce
trace      unix  -       -      n      -      0       bounce
verify     unix  -       -      n      -      1       verify
flush      unix  n       -      n      1000?  0       flush
proxymap   unix  -       -      n      -      -       proxymap
showq      unix  n       -      n      -      -       showq
error      unix  -       -      n      -      -       error
retry      unix  -       -      n      -      -       error
discard    unix  -       -      n      -      -       discard
local      unix  -       n      n      -      -       local
anvil      unix  -       -      n      -      1       anvil
scache     unix  -       -      n      -      1       scache
postlog    unix-dgram n  -      n      -      1       postlogd
"""


class PostfixError(RuntimeError):
    """A private Postfix could not be set up, started or reconfigured (the reason says why)."""


def unavailable() -> str | None:
    """Why no private Postfix can be started here, or ``None`` when one can."""
    if not POSTFIX.exists() or not POSTCONF.exists():
        return f"Postfix is not installed ({POSTFIX}; Debian: apt install postfix)"
    if os.geteuid() != 0:
        return "starting a Postfix instance needs root"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivatePostfix:
    """A Postfix instance in a temporary directory, listening on ``127.0.0.1:port``.

    ``settings`` are ``main.cf`` lines added after (and so overriding) the instance's own;
    ``services`` are ``master.cf`` lines added after its own (e.g. a second smtpd listener
    that a content filter hands mail back to, or the ``smtp`` client a relay needs).
    ``port=0`` picks a free port. Use it as a context manager, or call ``start()`` and
    ``stop()``. Mail for ``<user>@localhost`` (a user of this machine, e.g. ``root``) is
    delivered to ``mailbox(user)``; its log lines go to ``log``.
    """

    def __init__(
        self, port: int = 0, settings: dict[str, str] | None = None, services: str = ""
    ) -> None:
        self.port = port
        self.settings = dict(settings or {})
        self.services = services
        self.name = f"smtplab-{uuid.uuid4().hex[:8]}"
        self.root: Path | None = None

    # -- where things are ---------------------------------------------------------------

    @property
    def address(self) -> str:
        """``127.0.0.1:port``, as ``smtplab.check`` and ``transport.tcp_client.send`` take it."""
        return f"127.0.0.1:{self.port}"

    @property
    def config_directory(self) -> Path:
        return self._path("etc")

    @property
    def queue_directory(self) -> Path:
        return self._path("queue")

    @property
    def log(self) -> Path:
        """The instance's log file (``maillog_file``, written by its own postlogd)."""
        return self._path("maillog")

    def mailbox(self, user: str = "root") -> Path:
        """The mailbox file that local delivery to ``user@localhost`` appends to."""
        return self._path("mail") / user

    def _path(self, name: str) -> Path:
        if self.root is None:
            raise PostfixError("the private Postfix has not been started")
        return self.root / name

    # -- life cycle -----------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> PrivatePostfix:
        """Write the configuration, start the instance, return once it answers its port."""
        reason = unavailable()
        if reason is not None:
            raise PostfixError(reason)
        if self.master_pid is not None:
            return self
        # A port picked here can be taken by someone else before master binds it: try again
        # with another one, unless the caller asked for this very port.
        requested = self.port
        attempts = 3 if requested == 0 else 1
        for attempt in range(1, attempts + 1):
            self.port = requested or free_port()
            self._prepare()
            try:
                self._postfix("start")
                self._wait_until_listening(timeout)
            except PostfixError:
                self._teardown()
                self.port = requested
                if attempt == attempts:
                    raise
                continue
            break
        return self

    def stop(self) -> None:
        """Stop the instance and remove its directory: queue, mailboxes, log and all."""
        self._teardown()

    def __enter__(self) -> PrivatePostfix:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    # -- settings ---------------------------------------------------------------------------

    def setting(self, name: str) -> str:
        """The value of a ``main.cf`` parameter of this instance (``postconf -c DIR -h``)."""
        done = self._run([str(POSTCONF), "-c", str(self.config_directory), "-h", name])
        return done.stdout.strip()

    def configure(self, **settings: str) -> None:
        """Change this instance's ``main.cf`` and make the change take effect.

        The instance is restarted rather than reloaded: ``postfix reload`` only signals the
        master and returns, and until the master has acted on it an smtpd already waiting
        for a client may answer with the old settings; after a restart (``stop`` waits for
        the master to exit) every reply comes from the new ones.
        """
        lines = [f"{name}={value}" for name, value in settings.items()]
        self._run([str(POSTCONF), "-c", str(self.config_directory), "-e", *lines])
        self.settings.update(settings)
        self._postfix("stop")
        self._postfix("start")
        self._wait_until_listening(30.0)

    # -- mail -------------------------------------------------------------------------------

    def delivered(self, token: str, user: str = "root", timeout: float = 20.0) -> str | None:
        """The text of ``user``'s mailbox once a message holding ``token`` is in it, or
        ``None`` if none arrived within ``timeout`` seconds."""
        mailbox = self.mailbox(user)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if mailbox.exists():
                text = mailbox.read_text(errors="replace")
                if token in text:
                    return text
            time.sleep(0.1)
        return None

    def queue_is_empty(self) -> bool:
        """No message waits in the instance's queue (incoming, active or deferred)."""
        for name in ("incoming", "active", "deferred"):
            directory = self.queue_directory / name
            if directory.exists() and any(p.is_file() for p in directory.rglob("*")):
                return False
        return True

    # -- inside -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="smtplab-postfix-"))
        # Postfix's daemons run as the postfix user, local delivery as the recipient or as
        # nobody: they must reach into the directory (mkdtemp makes it private).
        self.root.chmod(0o755)
        for name in ("etc", "queue"):
            (self.root / name).mkdir(mode=0o755)
        spool = self.root / "mail"
        spool.mkdir()
        spool.chmod(0o1777)  # like /var/mail: anyone may create their own mailbox there
        self.log.touch(mode=0o644)
        master = MASTER_CF.format(address=self.address) + self.services
        (self.config_directory / "master.cf").write_text(master)
        main = {
            "compatibility_level": "3.6",
            "config_directory": str(self.config_directory),
            "queue_directory": str(self.queue_directory),
            "data_directory": str(self.root / "data"),
            "mail_spool_directory": str(spool),
            "syslog_name": f"postfix-{self.name}",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(self.root),
            "myhostname": "localhost",
            "mydestination": "localhost, localhost.localdomain",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtputf8_enable": "yes",
            "smtpd_banner": f"$myhostname ESMTP $mail_name ({self.name})",
            # Local users from the password file; no aliases (they would be /etc/aliases).
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "unix:passwd.byname",
            "biff": "no",
            # Nothing leaves the machine: mail for any other domain is bounced at once.
            "relayhost": "",
            "default_transport": "error:smtplab private instance: no relaying",
            "relay_transport": "error:smtplab private instance: no relaying",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            **self.settings,
        }
        lines = [f"{name} = {value}\n" for name, value in main.items()]
        (self.config_directory / "main.cf").write_text("".join(lines))

    def _wait_until_listening(self, timeout: float) -> None:
        """Until the instance greets on its port with its own banner (not someone else's)."""
        deadline = time.monotonic() + timeout
        last = "nothing"
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    sock.settimeout(5)
                    greeting = sock.recv(512).decode("ascii", "replace")
                    sock.sendall(b"QUIT\r\n")
                if self.name in greeting:
                    return
                raise PostfixError(f"{self.address} is another server's: {greeting.strip()}")
            except OSError as error:
                last = str(error)
            if self.master_pid is None:
                raise PostfixError(f"the private Postfix did not start: {self._log_tail()}")
            time.sleep(0.1)
        raise PostfixError(f"the private Postfix did not answer on {self.address}: {last}")

    @property
    def master_pid(self) -> int | None:
        """The process id of the instance's master while it runs, else ``None``."""
        if self.root is None:
            return None
        try:
            pid = int((self.queue_directory / "pid" / "master.pid").read_text().split()[0])
            # The process state follows the command's closing parenthesis; Z: a zombie, gone.
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return None if state in ("Z", "X") else pid

    def _teardown(self) -> None:
        if self.root is None:
            return
        if self.master_pid is not None:
            try:
                self._postfix("stop")
            except PostfixError:
                self._postfix("abort")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def _postfix(self, command: str) -> None:
        self._run([str(POSTFIX), "-c", str(self.config_directory), command])

    def _log_tail(self) -> str:
        """The log's last three lines (read from its last 8 KB: the log only grows)."""
        try:
            with self.log.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 8192))
                lines = log.read().decode(errors="replace").splitlines()[-3:]
        except (OSError, PostfixError):
            return "(no log)"
        return " / ".join(lines) or "(nothing in the log)"

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        # MAIL_CONFIG is set by -c; an inherited one must not point elsewhere.
        env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
        except subprocess.TimeoutExpired:
            raise PostfixError(f"{' '.join(argv)} took over 60 s: {self._log_tail()}") from None
        if done.returncode != 0:
            # Postfix's own messages go to the instance's log, not to its output.
            said = (done.stderr or done.stdout).strip() or self._log_tail()
            raise PostfixError(f"{' '.join(argv)} failed: {said}")
        return done
