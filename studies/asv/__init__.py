"""airspeed velocity suite (``asv.conf.json``: ``benchmark_dir = studies/asv``); see docs/benchmarks.md.

asv imports this package under the top-level name of its directory and every module in it, so it holds
benchmarks only; the shared code is ``studies.microbench`` (timing kernels, also used by the pytest
benchmarks) and ``studies.workcounts`` (deterministic counts, also used by the CI gate).

The checkout that contains this folder goes first on ``sys.path``: with asv's ``existing`` environment
the suite then benchmarks the code of the tree it was run from, whatever else is installed.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
