"""Convergence studies: run solvers over step counts and return tidy pandas DataFrames."""
