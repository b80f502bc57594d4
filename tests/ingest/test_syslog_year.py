"""The year of classic syslog stamps, one rule for every syslog reader (Postfix, Sendmail)."""

from __future__ import annotations

from smtplab.ingest.syslog_year import SyslogYear


def test_the_year_turns_at_new_year_and_a_late_december_line_stays_in_the_old_one() -> None:
    years = SyslogYear(2025)
    assert [years.of(month) for month in (11, 12, 1, 12, 1, 2)] == [
        2025, 2025, 2026, 2025, 2026, 2026
    ]  # fmt: skip


def test_a_guessed_year_goes_back_for_a_first_line_after_the_file_was_written() -> None:
    written_in_january = SyslogYear(2026, last_written=1)
    assert [written_in_january.of(month) for month in (12, 1)] == [2025, 2026]
    assert SyslogYear(2026, last_written=12).of(11) == 2026
