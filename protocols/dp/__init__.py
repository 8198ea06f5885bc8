"""Differential privacy for what leaves the MPC: exact integer noise (``sampling``)."""

from .sampling import bernoulli_exp, discrete_gaussian, discrete_gaussian_variance, discrete_laplace, samples

__all__ = ["bernoulli_exp", "discrete_gaussian", "discrete_gaussian_variance", "discrete_laplace", "samples"]
