"""The analysis on a Dask DataFrame gives the pandas answers: compared on a LocalCluster.

The data is a dataset written from real shapes: a Postfix log grown from the committed one
(two hosts, two days, refusals), the log of refusals without reply lines, the capture and the
client transcripts, in small batches so that it has many files, hence many partitions.
"""

from __future__ import annotations

import datetime as dt
import gzip
import pickle
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import smtplab
from smtplab.analysis import (
    code_distribution,
    latencies,
    messages,
    oddities,
    sessions,
    steps,
    transactions,
)
from smtplab.analysis.partitioned import is_dask
from smtplab.teaching.logs import grown_log

distributed = pytest.importorskip("distributed")

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _recorded_frames() -> dict[str, pd.DataFrame]:
    """The transcripts of the recorded analysis fixture (see test_recorded_analysis)."""
    with gzip.open(FIXTURES / "analysis.pickle.gz", "rb") as recorded:
        return pickle.load(recorded)["frames"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("dask")
    log = grown_log(
        where / "mail.log",
        150,
        hosts=("mx1", "mx2"),
        start=dt.datetime(2026, 11, 29, 22),
        every=dt.timedelta(minutes=1),
    )
    inputs = [
        log,
        FIXTURES / "postfix-refusals.log",
        FIXTURES / "smtp.pcapng",
        FIXTURES / "swaks.txt",
        FIXTURES / "smtplib-debug1.txt",
    ]
    smtplab.write_dataset(inputs, where / "dataset", year=2026, batch_rows=400)
    return where / "dataset"


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=None, processes=True
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


def test_the_dataset_has_many_partitions_and_sessions_are_whole(dataset: Path, cluster) -> None:
    frame = smtplab.dask_dataset(dataset)
    assert is_dask(frame) and frame.npartitions > 10
    names = frame["session"].astype(str).map_partitions(lambda part: set(part)).compute()
    seen: set[str] = set()
    for part in names:
        assert not part & seen, "a session is split between partitions"
        seen |= part
    assert len(seen) == smtplab.read_dataset(dataset)["session"].nunique()


@pytest.mark.parametrize("analysis", [steps, sessions, transactions, oddities, latencies, messages])
def test_each_analysis_gives_the_pandas_answer(dataset: Path, cluster, analysis) -> None:
    on_cluster = analysis(smtplab.dask_dataset(dataset))
    in_memory = analysis(smtplab.read_dataset(dataset))
    if analysis is oddities:
        assert in_memory.empty, "real traffic has no oddities"  # (odd traffic: below)
    else:
        assert len(in_memory) > 0
    pd.testing.assert_frame_equal(on_cluster, in_memory)


@pytest.mark.parametrize("by", ["class", "code", "enhanced", "command"])
def test_reply_code_distributions_are_the_pandas_ones(dataset: Path, cluster, by: str) -> None:
    on_cluster = code_distribution(smtplab.dask_dataset(dataset), by=by)
    in_memory = code_distribution(smtplab.read_dataset(dataset), by=by)
    if isinstance(in_memory, pd.Series):
        pd.testing.assert_series_equal(on_cluster, in_memory)
    else:
        pd.testing.assert_frame_equal(on_cluster, in_memory)


def test_filters_and_columns_reach_the_partitions(dataset: Path, cluster) -> None:
    filters = [("source", "==", "postfix"), ("day", "==", "2026-11-30")]
    frame = smtplab.dask_dataset(dataset, filters=filters, columns=["session", "kind", "code"])
    expected = smtplab.read_dataset(dataset, filters=filters, columns=["session", "kind", "code"])
    computed = frame.compute().reset_index(drop=True)
    assert list(computed.columns) == ["session", "kind", "code"]
    pd.testing.assert_frame_equal(
        computed.assign(session=computed["session"].astype(str)),
        expected.assign(session=expected["session"].astype(str)),
    )


def in_partitions(frame: pd.DataFrame, partitions: int) -> object:
    """``frame`` as a Dask DataFrame of about ``partitions`` partitions of whole sessions."""
    import dask.dataframe as dd

    names = list(pd.unique(frame["session"]))
    sessions_each = max(1, -(-len(names) // partitions))
    chunks = [names[start : start + sessions_each] for start in range(0, len(names), sessions_each)]
    return dd.from_map(
        lambda chunk: frame[frame["session"].isin(chunk)], chunks, meta=frame.iloc[:0]
    )


RECORDED = _recorded_frames()


@pytest.mark.parametrize("name", list(RECORDED))
def test_every_recorded_frame_gives_the_pandas_answers_in_partitions(name: str, cluster) -> None:
    """Odd traffic, logs of refusals, clashing names, shuffled rows: each frame of the
    recorded analysis fixture, in five partitions, gives what pandas gives."""
    frame = RECORDED[name]
    partitioned = in_partitions(frame, 5)
    for analysis in (steps, sessions, transactions, oddities, latencies):
        pd.testing.assert_frame_equal(analysis(partitioned), analysis(frame), obj=analysis.__name__)
    for by in ("class", "code", "enhanced", "command"):
        expected = code_distribution(frame, by=by)
        got = code_distribution(partitioned, by=by)
        assert got.equals(expected) and got.index.equals(expected.index), by
