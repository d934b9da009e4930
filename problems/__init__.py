"""Problems with exact answers: Gaussian data (exact output laws of samplers) and Gaussian
mixtures (exact scores, samples and densities), behind one protocol."""

from sdebench.problems.catalogue import PROBLEMS, get_problem, register_problem
from sdebench.problems.gaussian import GaussianProblem
from sdebench.problems.law import GaussianLaw
from sdebench.problems.mixture import GaussianMixtureProblem
from sdebench.problems.protocol import CAPABILITIES, EXACT_LAW, LOG_DENSITY, PATHS, SAMPLES, Problem

__all__ = [
    "CAPABILITIES",
    "EXACT_LAW",
    "LOG_DENSITY",
    "PATHS",
    "PROBLEMS",
    "SAMPLES",
    "GaussianLaw",
    "GaussianMixtureProblem",
    "GaussianProblem",
    "Problem",
    "get_problem",
    "register_problem",
]
