"""``track_<name>`` for every deterministic work count in ``studies.workcounts`` (the CI gate's numbers):
lower-level iterations, CG steps and upper iterations MAID needs to reach a fixed target, and upper
values after a fixed budget. asv records them per commit, so ``asv compare`` shows work changes too."""

from studies import workcounts as _wc


def _make_track(count):
    def track():
        return count()

    track.__name__ = track.__qualname__ = f"track_{count.name}"
    track.__doc__ = count.description
    track.unit = count.unit
    return track


for _count in _wc.available_counts().values():
    globals()[f"track_{_count.name}"] = _make_track(_count)
