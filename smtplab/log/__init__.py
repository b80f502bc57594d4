"""Transcripts: the recorder, the schema, and DataFrames built from them."""

from smtplab.log.frame import concat, conform, empty_frame, to_frame
from smtplab.log.recorder import Recorder, Row
from smtplab.log.schema import COLUMNS

__all__ = ["COLUMNS", "Recorder", "Row", "concat", "conform", "empty_frame", "to_frame"]
