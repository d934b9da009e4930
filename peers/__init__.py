"""Peer libraries' samplers (k-diffusion, diffusers) measured as sdebench measures its own:
study entries with declared orders and sources, exact output laws by probing, agreement with
sdebench's implementation of the same method."""
