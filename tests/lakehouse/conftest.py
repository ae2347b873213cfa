"""Lakehouse fixtures: one Spark session for the whole test session (its JVM takes seconds to start), started
at a lower priority so the JVM's threads yield to the rest of the machine, and platforms on the lakehouse."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipelines.warehouse import BACKEND_ENV
from tests.conftest import Platform

SPARK_NICENESS = 15


@pytest.fixture(scope="session")
def spark():
    """The process's Spark session (`pipelines.lakehouse.spark.session`), its JVM started at nice +15."""
    from pipelines.lakehouse.spark import session

    before = os.getpriority(os.PRIO_PROCESS, 0)
    os.setpriority(os.PRIO_PROCESS, 0, min(before + SPARK_NICENESS, 19))
    try:
        started = session()
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, before)
        except PermissionError:  # lowering it back needs root; the tests then run nicer too
            pass
    yield started
    started.stop()
    session.cache_clear()


@pytest.fixture
def lakehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lakehouse backend for this test (the environment switch a deployment sets)."""
    monkeypatch.setenv(BACKEND_ENV, "lakehouse")


def twin(platform: Platform, root: Path) -> Platform:
    """A second platform with the same landed files, keys and workspaces: the same events give the same blind
    indexes there, so the two warehouses can be compared row for row."""
    other = Platform(root)
    for folder in ("landing", "keys", "workspaces"):
        if (platform.root / folder).exists():
            shutil.copytree(platform.root / folder, other.root / folder)
    return other
