"""Quality stage: the no-reference quality q_j of each generated sample.

Public API: ``get_quality(spec)``, ``quality_scores(spec, ds, norm)``, ``normalize(scores,
method)`` with ``NORMS``, ``read_quality(path, ids)`` and the backend classes. Heavy imports
(OpenCV, scikit-image, pyiqa) load on first use.
"""

from gmvaluator.quality.normalize import NORMS, normalize
from gmvaluator.quality.registry import (
    CallableQuality,
    FileQuality,
    NoQuality,
    QualityScorer,
    describe_quality,
    get_quality,
    known_quality,
    quality_scores,
    read_quality,
)

__all__ = [
    "NORMS",
    "CallableQuality",
    "FileQuality",
    "NoQuality",
    "QualityScorer",
    "describe_quality",
    "get_quality",
    "known_quality",
    "normalize",
    "quality_scores",
    "read_quality",
]
