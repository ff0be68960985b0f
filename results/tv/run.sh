# The small TV studies of docs/nonsmooth_tv.md §11, one core each (rows.csv resumes):
# anisotropic TV at 64×64 (about 7 minutes on a shared 2-core machine), isotropic TV at 32×32 (about 4);
# anisotropic TV at 128×128 on three photographs, one process per problem (about 10 minutes each, run at once);
# anisotropic TV at the paper's 400×300, 300 s per run, one process per problem (about 61 minutes each, run at once)
OMP_NUM_THREADS=1 python -m studies.study_tv --tv-kind tv_aniso --size 64 --images astronaut --max-time 60 --out results/tv
OMP_NUM_THREADS=1 python -m studies.study_tv --tv-kind tv --size 32 --images astronaut --max-time 30 --out results/tv/isotropic32
OMP_NUM_THREADS=1 python -m studies.study_tv --tv-kind tv_aniso --size 128 --images astronaut,coffee,chelsea --problems deblur2d --max-time 60 --out results/tv/aniso128/deblur2d
OMP_NUM_THREADS=1 python -m studies.study_tv --tv-kind tv_aniso --size 128 --images astronaut,coffee,chelsea --problems semiblind2d --max-time 60 --out results/tv/aniso128/semiblind2d
OMP_NUM_THREADS=1 python -m studies.study_tv --tv-kind tv_aniso --size 400x300 --images astronaut,coffee,chelsea --problems deblur2d --max-time 300 --out results/tv/aniso400x300/deblur2d
OMP_NUM_THREADS=1 python -m studies.study_tv --tv-kind tv_aniso --size 400x300 --images astronaut,coffee,chelsea --problems semiblind2d --max-time 300 --out results/tv/aniso400x300/semiblind2d
