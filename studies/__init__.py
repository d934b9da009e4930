"""Convergence studies: run samplers over step counts on problems with exact answers, fit orders
with confidence intervals, and keep every result with the configuration that made it."""

from sdebench.studies.config import StudyConfig
from sdebench.studies.convergence import StudyResult, run_study
from sdebench.studies.metrics import METRICS, Measurement, UnitRun, register_metric
from sdebench.studies.order import order_table
from sdebench.studies.store import ResultStore

__all__ = ["METRICS", "Measurement", "ResultStore", "StudyConfig", "StudyResult", "UnitRun",
           "order_table", "register_metric", "run_study"]
