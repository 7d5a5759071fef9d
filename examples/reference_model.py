"""A model file for ``gmvaluator value --model``: a reference generator that gmvaluator saved
(the demo's ``RUN/generator``, or any folder a CVAE, GAN or diffusion model was saved to).

    gmvaluator value --train builtin:fashion-mnist --generated runs/demo/generated.npz \
        --out runs/demo-model-aware --model examples/reference_model.py \
        --checkpoints runs/demo/generator

Each checkpoint is one saved generator; several (comma-separated) are an ensemble.
"""

from gmvaluator.evaluate.generators.reference import load_reference


def load_model(checkpoint=None):
    if checkpoint is None:
        raise ValueError("give the generator's folder with --checkpoints, e.g. runs/demo/generator")
    return load_reference(checkpoint).gradient_model()
