"""CI gate on deterministic work counts (``studies.workcounts``) against ``studies/workcounts_baseline.json``.

Wall time is not gated here (it depends on the machine and its load): compare timings with ``asv compare``
on one machine. After an intended change of the counts: ``python -m studies.workcounts --update``, commit.
"""

from __future__ import annotations

import pytest

from studies import workcounts

BASELINE = workcounts.load_baseline() if workcounts.BASELINE_PATH.exists() else {}


def test_baseline_exists():
    assert BASELINE, (
        f"{workcounts.BASELINE_PATH} is missing or empty; create it with `{workcounts.UPDATE_COMMAND}`"
    )


@pytest.mark.parametrize("name", workcounts.gate_names(BASELINE))
def test_work_count_matches_baseline(name):
    failure = workcounts.check(name, BASELINE.get(name), workcounts.compute_one(name))
    if failure:
        pytest.fail(failure, pytrace=False)
