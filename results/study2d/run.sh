#!/usr/bin/env bash
# The 2D study: two study processes (deblur2d, semiblind2d), one torch thread each, sharing one
# rows.csv; every finished row is appended at once and a rerun skips it. Phases in decreasing priority.
# Budget per ADP run: 800 lower-level iterations (deterministic), 600 solver seconds as a safeguard.
set -e
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
ROWS=authors-fix-grad-weight,authors-fix-adjoint,authors-fix-step,authors-fix-stop,authors-fix-caps
ROWS=$ROWS,authors-fix-tv-boundary,authors-fix-h1,authors-fix-upper-g
phases() {  # $1 = problem
  S="python -m studies.study2d --problems $1 --max-ll-iters 800 --max-time 600 --big '' --out results/study2d"
  # A: the paper's size, authors and certified, MAID / IFT / LISTA, three images (with the §2.5 controls)
  eval "$S --size 400x300 --protocols authors,certified --solvers maid,ift,lista"
  # B: the ablation rows at the paper's size, MAID
  eval "$S --size 400x300 --protocols $ROWS --ablation-solvers maid"
  # C: 128×128, authors and certified with all three solvers; the ablation rows with MAID and LISTA, and
  # with IFT for the first two rows only (from authors-fix-step on, IFT's CG on the α = 0.248 Hessian runs
  # 5 000-step solves every upper iteration and heads for the 600 s safeguard: not run, out of time)
  eval "$S --size 128 --protocols authors,certified --solvers maid,ift,lista"
  eval "$S --size 128 --protocols authors-fix-grad-weight,authors-fix-adjoint --ablation-solvers maid,ift,lista"
  eval "$S --size 128 --protocols $ROWS --ablation-solvers maid,lista"
  # L: a longer MAID run under authors (4000 lower iterations), astronaut, 128×128, with its controls
  python -m studies.study2d --problems "$1" --max-ll-iters 4000 --max-time 600 --big '' \
    --out results/study2d/long --protocols authors --solvers maid --images astronaut --size 128
}
phases deblur2d > results/study2d/log-deblur2d.txt 2>&1 &
phases semiblind2d > results/study2d/log-semiblind2d.txt 2>&1 &
wait
python -m studies.study2d --summary-only --out results/study2d
python -m studies.study2d --summary-only --out results/study2d/long
