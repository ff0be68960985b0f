"""The time gate's arithmetic and decision on synthetic samples (studies/timegate.py; nothing is timed)."""

from __future__ import annotations

import math

import pytest

from studies import timegate


def test_ratio_per_repetition_is_of_the_inner_medians():
    test = [[1.0, 3.0, 2.0], [4.0, 4.0, 100.0]]  # an outlier inner sample does not move a median
    base = [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    assert timegate.ratios(test, base) == [2.0, 2.0]


def test_decision_uses_the_median_over_repetitions():
    ok, lines = timegate.decide({"same": [0.9, 1.0, 1.1, 2.5, 1.05], "slow": [2.0, 1.9, 1.2, 2.1, 2.2]}, 1.3)
    assert not ok
    assert len(lines) == 2
    assert "same" in lines[0] and "median ratio 1.050" in lines[0] and lines[0].endswith("ok")
    assert "slow" in lines[1] and "median ratio 2.000" in lines[1] and "SLOWER" in lines[1]


def test_a_median_at_the_threshold_passes_and_a_missing_one_fails():
    assert timegate.decide({"k": [1.3, 1.3, 1.3]}, 1.3)[0]
    assert not timegate.decide({"k": [1.31, 1.3, 1.4]}, 1.3)[0]
    assert not timegate.decide({"k": []}, 1.3)[0]
    assert not timegate.decide({"k": [math.nan, math.nan, 1.0]}, 1.3)[0]


def test_baseline_file(tmp_path):
    path = tmp_path / "baseline"
    path.write_text("# a comment first\n0123abcd  trailing words\n# why\n")
    assert timegate.read_baseline(path) == "0123abcd"
    path.write_text("# only comments\n")
    with pytest.raises(ValueError, match="names no commit"):
        timegate.read_baseline(path)
    with pytest.raises(ValueError, match="missing"):
        timegate.read_baseline(tmp_path / "absent")


def test_the_committed_baseline_names_a_commit():
    commit = timegate.read_baseline()
    assert len(commit) == 40 and int(commit, 16) >= 0


def test_a_commit_outside_the_history_is_a_clear_error():
    with pytest.raises(ValueError, match="not in this clone's history"):
        with timegate.baseline_tree("0" * 40):
            pass
