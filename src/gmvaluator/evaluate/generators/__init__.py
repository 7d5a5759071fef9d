"""Generative models gmvaluator trains itself, for its demo and evaluation harness."""

from gmvaluator.evaluate.generators.cvae import CVAE, CVAESettings, default_epochs, train_cvae

__all__ = ["CVAE", "CVAESettings", "default_epochs", "train_cvae"]
