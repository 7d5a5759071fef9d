"""Every ``GMVALUATOR_*`` environment variable, declared once with its meaning.

Modules read a variable only through its declaration here (``env.CACHE.path()``), so this list
is the whole of what the environment can change. Values are read when asked for, never cached:
a test or a caller may set a variable at any time before the read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gmvaluator.errors import InputError


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: its ``name`` and what it changes (``meaning``)."""

    name: str
    meaning: str

    def text(self) -> str | None:
        """The value, or None when the variable is unset or empty."""
        return os.environ.get(self.name) or None

    def path(self) -> Path | None:
        value = self.text()
        return None if value is None else Path(value)

    def integer(self) -> int | None:
        value = self.text()
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise InputError(
                f"{self.name}={value!r} is not an integer. Set it to a whole number or unset it."
            ) from None


CACHE = EnvVar(
    "GMVALUATOR_CACHE",
    "Folder of the embedding cache shared by runs "
    "(default $XDG_CACHE_HOME/gmvaluator/embeddings, else ~/.cache/gmvaluator/embeddings).",
)
MEMORY_BYTES = EnvVar(
    "GMVALUATOR_MEMORY_BYTES",
    "Memory budget in bytes that the check before a run uses instead of the available memory.",
)
FASHION_MNIST_DIR = EnvVar(
    "GMVALUATOR_FASHION_MNIST_DIR",
    "Folder of the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist).",
)
MANIQA_WEIGHTS = EnvVar(
    "GMVALUATOR_MANIQA_WEIGHTS",
    "Local MANIQA weights file (e.g. ckpt_koniq10k.pt) for --quality maniqa.",
)
LPIPS_WEIGHTS = EnvVar(
    "GMVALUATOR_LPIPS_WEIGHTS",
    "ImageNet weights of the LPIPS backbone (default: torch's hub cache).",
)
LPIPS_LINEAR = EnvVar(
    "GMVALUATOR_LPIPS_LINEAR",
    "LPIPS linear layers, weights/v0.1/<net>.pth (default: the files of the lpips package).",
)
DREAMSIM_WEIGHTS = EnvVar(
    "GMVALUATOR_DREAMSIM_WEIGHTS",
    "Local DreamSim weights folder for --rerank dreamsim.",
)
MAX_TEXT_BYTES = EnvVar(
    "GMVALUATOR_MAX_TEXT_BYTES",
    "Longest line of a .txt or .jsonl source, in bytes (default 1048576); longer ones are "
    "refused, or skipped under --on-error skip.",
)
SERVICE_TOKEN = EnvVar(
    "GMVALUATOR_SERVICE_TOKEN",
    "The token that `gmvaluator serve` asks of every request (as --token; the flag wins).",
)
PROGRESS = EnvVar(
    "GMVALUATOR_PROGRESS",
    "1: progress bars on stderr even when it is not a terminal (a log file, CI); 0: none at "
    "all. Unset: bars only on a terminal (--quiet hides them always).",
)
# read by the scripts, not the library
SKIP_VISION = EnvVar(
    "GMVALUATOR_SKIP_VISION",
    "scripts/test.sh: when set, the tests of the separate vision environment are left out.",
)
VENV = EnvVar(
    "GMVALUATOR_VENV",
    "scripts/setup.sh: the virtual environment to install into (default .venv).",
)
VISION_VENV = EnvVar(
    "GMVALUATOR_VISION_VENV",
    "scripts/test-vision.sh: the virtual environment of the vision tests (default .venv-vision).",
)

#: Every variable by name.
VARIABLES: dict[str, EnvVar] = {
    var.name: var
    for var in (
        CACHE,
        MEMORY_BYTES,
        FASHION_MNIST_DIR,
        MANIQA_WEIGHTS,
        LPIPS_WEIGHTS,
        LPIPS_LINEAR,
        DREAMSIM_WEIGHTS,
        MAX_TEXT_BYTES,
        SERVICE_TOKEN,
        PROGRESS,
        SKIP_VISION,
        VENV,
        VISION_VENV,
    )
}


def declared(name: str) -> EnvVar:
    """The declaration of variable ``name``; a name not declared here is a programming error."""
    try:
        return VARIABLES[name]
    except KeyError:
        raise KeyError(f"{name} is not declared in gmvaluator.env") from None
