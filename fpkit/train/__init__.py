"""Training a fingerprinter: `fpkit train` and `fpkit export`.

loop.py        the training run, top to bottom (`train`, `resume_config`, checkpoints)
data.py        songs decoded once into the run's cache; anchor/replica batches
validation.py  per-epoch validation loss and the paper's mini search
optim.py       optimisers and the learning-rate schedule
curves.py      curves.png
export.py      a training checkpoint as a shippable model file
"""
