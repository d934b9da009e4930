"""Denoising score matching for small networks on data with known densities (``sdebench.training``).

:mod:`.networks` holds a time-conditioned MLP, :mod:`.dsm` the loss (prediction target and
weighting as options), :mod:`.trainer` the seeded, resumable training loop and its checkpoints
(which ``--model`` of the convergence study loads).
"""
