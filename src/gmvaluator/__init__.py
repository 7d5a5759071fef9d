"""gmvaluator: what each training sample is worth to what a generative model produces."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Imported on first use, so that `import gmvaluator` (and the CLI's --help) stays fast.
_LAZY = {
    "GMValuatorError": "gmvaluator.errors",
    "InputError": "gmvaluator.errors",
    "NotFittedError": "gmvaluator.errors",
    "ValuationResult": "gmvaluator.core.result",
    "Valuator": "gmvaluator.core.valuator",
    "CreditRule": "gmvaluator.core.credit",
    "softmax_credit": "gmvaluator.core.credit",
    "ValueConfig": "gmvaluator.config",
    "load_source": "gmvaluator.sources",
    "get_embedder": "gmvaluator.embed",
    "embed_dataset": "gmvaluator.embed",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gmvaluator' has no attribute {name!r}")
