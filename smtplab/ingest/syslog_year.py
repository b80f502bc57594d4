"""The year of a classic syslog stamp (``Dec 31 23:59:59``), which has none.

A log starts in ``year`` (the caller's, or its file's modification year) and the year turns as
its months go: back more than six months (December to January) is a new year. A late line in
the other direction, a ``Dec 31`` written among ``Jan 1`` lines, stays in the old year. When the
year is a guess from the file's time, a first line from a month after the file was last written
belongs to the year before.
"""

from __future__ import annotations

MONTHS = {
    name: number
    for number, name in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


class SyslogYear:
    """The year of each month a log's classic stamps name, line after line."""

    def __init__(self, year: int, last_written: int | None = None) -> None:
        self.year = year
        self._newest_month = last_written  # the month the file was last written, if a guess
        self._last_month = 0

    def of(self, month: int) -> int:
        """The year of the next stamp, whose month is ``month`` (1-12)."""
        if self._newest_month is not None:
            if month > self._newest_month:  # "Dec 31" in a log written in January
                self.year -= 1
            self._newest_month = None
        if month < self._last_month - 6:  # December to January: a new year
            self.year += 1
        elif month == 12 and self._last_month == 1:  # a late "Dec 31" among "Jan 1"s
            self.year -= 1
        self._last_month = month
        return self.year
