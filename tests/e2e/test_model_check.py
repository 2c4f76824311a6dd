"""The model check (issue 19): clients race creates, deletes, spec and status writes, reads
and watches of a few names against a generated server on every backend, which is killed
with SIGKILL with writes in flight and started again; the recorded history must then agree
with the storage's own change log, property by property (`tests/_support/model_check`).

A short seeded run per backend: 6 s of load and 2 kills, 15-35 s in all with the restarts,
by the load of the machine. ``bench/model_check.py`` (``make model-check``) runs the same
for minutes and prints its figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._support.e2e import make_device_project
from tests._support.model_run import RunConfig, run_model
from tests._support.model_server import BACKENDS

pytestmark = pytest.mark.e2e

SEED = 19
KILLS = 2


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_device_project(tmp_path_factory.mktemp("model"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_history_agrees_with_the_change_log(project: Path, tmp_path: Path, backend: str
                                            ) -> None:
    report = run_model(project, "device_api", tmp_path,
                       RunConfig(backend, seconds=6, kills=KILLS, seed=SEED))
    print(report.summary())
    assert not report.findings, report.summary(examples=5)
    # the run did what it is for, so a clean result means something
    figures = report.figures
    assert figures["kills"] == KILLS
    assert figures["acked"] >= 20 and figures["unknown"] >= 1, report.summary()
    assert figures["events"] >= figures["log"], report.summary()
