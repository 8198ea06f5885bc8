"""Sources of authenticated preprocessing: the interface, and the insecure test dealer."""

from .base import Preprocessing, PreprocessingSource
from .dealer import InsecureDealer

__all__ = ["InsecureDealer", "Preprocessing", "PreprocessingSource"]
