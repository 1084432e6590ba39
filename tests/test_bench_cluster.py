"""The cluster rows (issue 24, item 7) on tiny sizes: real ``narrator worker`` processes on
a private redis-server, ``submit --wait``, plain ``narrate`` runs and the emulator.

Timings are not asserted (bench.json has them); what is checked is that every run really
ran: each chunk of each document reached its emulator, the books were written, the kill
happened mid-run and nothing but in-flight work was paid twice.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from narrator.tools.bench import runner as bench
from narrator.tools.bench.cluster import CONCURRENCY, RPM, WORKERS
from narrator.tools.bench.harness import Sizes


def _has_worker() -> bool:
    try:
        return importlib.util.find_spec("narrator.cluster.worker") is not None
    except ModuleNotFoundError:  # no narrator.cluster at all
        return False


TINY = Sizes(cluster_documents=3, cluster_chunks=2)
CHUNKS = TINY.cluster_documents * TINY.cluster_chunks


@pytest.mark.slow
@pytest.mark.skipif(not _has_worker(), reason="`narrator worker` is not merged yet (branch worker)")
async def test_cluster_rows_run_every_chunk_through_real_workers(tmp_path: Path) -> None:
    rows = await bench.run(TINY, tmp_path, only=["cluster"])
    assert not [r.figure for r in rows if r.figure.startswith("failed")]
    pace, throttled, narrate_pace, narrate_throttled, scale, alone, killed = rows
    assert pace.data["done"] == CHUNKS and pace.data["workers"] == WORKERS
    assert pace.data["requests"] == CHUNKS + pace.data["throttled"]
    assert pace.met is not None and throttled.met is not None  # held to the goals
    assert narrate_pace.met is None and narrate_throttled.met is None  # the contrast
    contrast = narrate_pace.data
    assert contrast["processes"] == WORKERS
    # Stopped past twice the ideal time, they show what they had reached.
    assert contrast["done"] == CHUNKS or (contrast["stopped_at_time_limit"] and contrast["done"])
    assert scale.data["three"]["done"] == WORKERS * CHUNKS
    assert scale.data["three"]["rpm"] == WORKERS * RPM
    assert scale.data["one"]["done"] == CHUNKS == alone.data["done"]
    assert scale.ratio == pytest.approx(scale.data["three"]["rate"] / scale.data["one"]["rate"])
    data = killed.data
    assert data["books"] == TINY.cluster_documents and data["distinct_billed"] == CHUNKS
    assert 0 < data["killed_at"] <= CHUNKS  # killed once work was under way
    assert killed.met == (data["rebilled"] <= CONCURRENCY)
