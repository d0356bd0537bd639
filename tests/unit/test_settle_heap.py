"""The daemon's collector settings, applied once it serves (apiserver/cli/run.py)."""

from __future__ import annotations

import gc

from apiserver.cli.run import GC_YOUNG_THRESHOLD, settle_heap


def test_settle_heap_freezes_what_exists_and_collects_young_objects_rarely() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
