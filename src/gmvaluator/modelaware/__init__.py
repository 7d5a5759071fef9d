"""Model-aware re-score: when the user has the model, the training-free shortlist of each
generated sample is re-scored by how much each candidate moved the model's output on it.

- ``model``: the interface (``GradientModel``: a torch module, a per-example loss, how items
  become its inputs) and model files (``load_model_file``);
- ``features``: projected per-example gradients, cached by the model's fingerprint;
- ``rescore``: the TRAK score of the shortlist and the credit it becomes.
"""

from gmvaluator.modelaware.model import Examples, GradientModel, load_model_file

__all__ = ["Examples", "GradientModel", "load_model_file"]
