"""Differential privacy for what leaves the MPC: exact integer noise (``sampling``), accounting with
``dp-accounting`` (``accounting``), noise inside the MPC (``noise``) and ``Session.output(x, dp=DP(...))``
(``output``)."""

from .output import DP
from .sampling import bernoulli_exp, discrete_gaussian, discrete_gaussian_variance, discrete_laplace, samples

__all__ = [
    "DP",
    "bernoulli_exp",
    "discrete_gaussian",
    "discrete_gaussian_variance",
    "discrete_laplace",
    "samples",
]
