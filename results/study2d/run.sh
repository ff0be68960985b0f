#!/usr/bin/env bash
# The 2D study of issue 7, in phases of decreasing priority; every finished row goes to rows.csv at once and a
# rerun skips it. One torch thread; budget per ADP run: 800 lower-level iterations (checked between upper
# iterations, so a run may overshoot by one upper iteration), 240 solver seconds as a safeguard.
set -e
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
S="python -m studies.study2d --max-ll-iters 800 --max-time 240 --out results/study2d"
ROWS=authors-fix-grad-weight,authors-fix-adjoint,authors-fix-step,authors-fix-stop,authors-fix-caps
ROWS=$ROWS,authors-fix-tv-boundary,authors-fix-h1,authors-fix-upper-g
# A: MAID (the paper's method) under authors and certified, 3 images, both problems, with the §2.5 controls
$S --protocols authors,certified --solvers maid --big ''
# D1: the authors' TV baseline at the paper's size
$S --protocols authors --solvers maid --big 400x300 --big-protocols authors
# B: the ablation rows, MAID, astronaut
$S --protocols $ROWS --ablation-solvers maid --images astronaut --big ''
# C: IFT and LISTA under authors and certified
$S --protocols authors,certified --solvers maid,ift,lista --big ''
# D2: the certified TV baseline at the paper's size
$S --protocols authors --solvers maid --big 400x300 --big-protocols certified
# L: a longer MAID run under authors (4000 lower iterations) with the same-work TV control, astronaut
python -m studies.study2d --max-ll-iters 4000 --max-time 600 --out results/study2d/long --protocols authors \
  --solvers maid --images astronaut --big ''
# E: the ablation rows on the held-out images (NOT run for the committed rows.csv: out of time)
$S --protocols $ROWS --ablation-solvers maid --big ''
