"""MAID vs IFT vs LISTA with TV itself in the lower level, on both image problems: ``studies.study2d``'s grid
with ``--param regulariser=tv`` (isotropic; ``--tv-kind tv_aniso`` for anisotropic) under the ``certified``
protocol, so each row is blurry, the solved TV baseline (TV at b₀, certified by the duality gap to the
protocol's tolerance) and ADP-β by each solver.

    OMP_NUM_THREADS=1 python -m studies.study_tv [--size 128] [--images astronaut,coffee,chelsea]
        [--max-ll-iters 200000] [--max-time 120] [--out results/tv] [--tv-kind tv|tv_aniso]

Any further arguments go to ``studies.study2d`` unchanged. The paper-size baselines (``--big``) are off.
"""

from __future__ import annotations

import argparse
import sys

from studies import study2d

#: defaults of the TV study: a primal–dual solve to MAID's accuracies takes thousands of iterations, so the
#: lower-level work budget is far above study2d's (1500, sized for the smoothed problem's FISTA)
DEFAULTS = {"--max-ll-iters": "200000", "--max-time": "120", "--out": "results/tv", "--size": "128"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tv-kind", default="tv", choices=("tv", "tv_aniso"))
    args, rest = ap.parse_known_args(sys.argv[1:] if argv is None else argv)
    given = {a.split("=", 1)[0] for a in rest if a.startswith("--")}
    extra = [item for key, value in DEFAULTS.items() if key not in given for item in (key, value)]
    study2d.main(
        [*extra, "--protocols", "certified", "--solvers", "maid,ift,lista", "--big", ""]
        + ["--param", f"regulariser={args.tv_kind}", *rest]
    )


if __name__ == "__main__":
    main()
