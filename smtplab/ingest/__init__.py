"""Captured SMTP traffic into transcript rows: pcap/pcapng captures, Postfix, Exim and Sendmail
logs, Zeek's smtp.log, Exchange message tracking logs, Microsoft 365 message traces, swaks and
smtplib transcripts, all read by :func:`read` into the schema live sessions use."""

from smtplab.ingest.reader import FORMATS, IngestError, IngestWarning, detect, read

__all__ = ["FORMATS", "IngestError", "IngestWarning", "detect", "read"]
