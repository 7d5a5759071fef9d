"""scikit-learn's estimator contract, without importing scikit-learn.

``get_params``, ``set_params`` and a repr of the changed parameters, all read from the
constructor's signature, which stays the one list of parameters; with them
``sklearn.base.clone`` works, and ``check_is_fitted`` with the two ``__sklearn_*__`` methods.
Subclassing ``sklearn.base.BaseEstimator`` would give the same, but importing scikit-learn
took 3 s here, more than the rest of a run's start.
"""

from __future__ import annotations

import inspect
from typing import Any, Self

from gmvaluator.errors import InputError


class Estimator:
    """Base of estimators whose constructor only stores its parameters under their names.

    A subclass sets its fitted state in ``fit`` as the attribute ``_fitted``.
    """

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The constructor's parameters, in order."""
        return tuple(name for name in inspect.signature(cls.__init__).parameters if name != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters, by name (``deep`` is accepted for scikit-learn; none are nested)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> Self:
        """Change parameters; they take effect at the next ``fit``."""
        valid = self.param_names()
        for name, value in params.items():
            if name not in valid:
                raise InputError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {sorted(valid)!r}.",
                    param=name,
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        """As scikit-learn's: only the parameters that differ from their defaults."""
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if value is not defaults[name].default and value != defaults[name].default
        ]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_fitted")

    def __sklearn_tags__(self) -> Any:
        """What ``sklearn.utils.validation.check_is_fitted`` reads (scikit-learn >= 1.6).

        Only scikit-learn calls it, so importing scikit-learn here costs nothing more.
        """
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False))

    def _check_fitted(self) -> None:
        """Raise ``NotFittedError`` (ours and scikit-learn's) before ``fit``."""
        if not hasattr(self, "_fitted"):
            from gmvaluator.errors import NotFittedError

            raise NotFittedError(f"This {type(self).__name__} is not fitted yet. Call 'fit' first.")
