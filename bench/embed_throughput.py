"""Embedding throughput: our pipeline against a bare forward pass of the same model.

For each embedder, items per second (1) through ``embed_sharded`` (what ``gmvaluator value``
runs: reading and decoding the files, preprocessing, the model, the checks and the shards on
disk) and (2) through the model alone on the same batches, already decoded and preprocessed;
then pipeline / bare. The two are timed in pairs, ``--repeats`` times in alternating order, and
the pair with the median ratio is reported (all ratios go to the JSON): other processes slow
both timings of a pair alike, so the ratio stays steady on a shared machine. Images are real:
Fashion-MNIST test images (scikit-learn's digits when the Debian package is absent) and
scikit-image's photos, written as PNG files; texts are Debian's fortunes. The BLAS and thread
settings are printed with the table.

    OMP_NUM_THREADS=1 .venv/bin/python bench/embed_throughput.py --n 256 --repeats 5
    .venv/bin/python bench/embed_throughput.py --embedders sscd-distilled,minilm --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

DEFAULT = "efficientnet-lite0,sscd-distilled,sscd,pixels,minilm"


def write_images(folder: Path, n: int) -> None:
    """n real images as PNG: skimage's photos, then Fashion-MNIST (or digits) up to n."""
    import skimage.data

    from gmvaluator.sources import load_source
    from gmvaluator.sources.builtin import fashion_mnist_available

    photos = ["astronaut", "coffee", "chelsea", "camera", "rocket", "horse", "coins", "moon"]
    k = 0
    for name in photos[: min(len(photos), n)]:
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(folder / f"{k:06d}.png")
        k += 1
    spec = "builtin:fashion-mnist:test" if fashion_mnist_available() else "builtin:digits"
    arr = np.asarray(load_source(spec).items.array)
    for i in range(n - k):
        Image.fromarray(arr[i % len(arr)]).save(folder / f"{k + i:06d}.png")


def write_texts(path: Path, n: int) -> None:
    """n quotes of Debian's fortunes (one a line, whitespace collapsed), repeated if fewer."""
    folder = Path("/usr/share/games/fortunes")
    quotes: list[str] = []
    for f in sorted(folder.glob("*")) if folder.is_dir() else []:
        if f.is_file() and not f.suffix and not f.is_symlink():
            text = f.read_text(encoding="utf-8", errors="replace")
            quotes += [" ".join(q.split()) for q in text.split("\n%\n") if q.strip()]
    if not quotes:
        raise SystemExit("Debian's fortunes are not installed: apt-get install fortunes")
    path.write_text("\n".join(quotes[i % len(quotes)] for i in range(n)) + "\n")


def bare_forward(name: str, embedder: Any, batches: list[list[Any]]) -> Callable[[], None]:
    """A function that runs only the model on the preprocessed batches."""
    if name == "efficientnet-lite0":
        import torch

        from gmvaluator.embed.efficientnet import load_model, preprocess

        model = load_model("cpu")
        xs = [
            torch.from_numpy(preprocess(b)).contiguous(memory_format=torch.channels_last)
            for b in batches
        ]

        def run_effnet() -> None:
            with torch.inference_mode():
                for x in xs:
                    model.extract_features(x).mean(dim=(2, 3))

        return run_effnet
    if name in ("sscd", "sscd-distilled"):
        from gmvaluator.embed.sscd import load_session, preprocess

        session = load_session(embedder.model, embedder.threads)
        xs = [preprocess(b, embedder.image_size) for b in batches]
        return lambda: [session.run(["embedding"], {"image": x}) for x in xs] and None
    if name == "minilm":
        import torch

        from gmvaluator.embed.minilm import load_model

        model = load_model("cpu")
        prep = getattr(model, "preprocess", None) or model.tokenize
        feats = [prep(b) for b in batches]

        def run_minilm() -> None:
            with torch.inference_mode():
                for f in feats:
                    model(f)

        return run_minilm
    # pixels: the embedder is its own model
    return lambda: [embedder.embed_batch(b) for b in batches] and None


def measure(name: str, src: str, n: int, batch_size: int, repeats: int) -> dict[str, Any]:
    from gmvaluator.embed import get_embedder
    from gmvaluator.embed.shards import embed_sharded
    from gmvaluator.sources import load_source

    embedder = get_embedder(name)
    ds = load_source(src)
    batches = [ds.items[s : s + batch_size] for s in range(0, n, batch_size)]
    embedder.embed_batch(batches[0][:2])  # load the model outside both timings
    bare = bare_forward(name, embedder, batches)
    bare()  # warm-up
    t_bare, t_pipe = [], []
    for r in range(repeats):
        # paired timings, in alternating order, so that load from other processes hits both
        for which in ("bare", "pipe") if r % 2 == 0 else ("pipe", "bare"):
            if which == "bare":
                t0 = time.perf_counter()
                bare()
                t_bare.append(time.perf_counter() - t0)
                continue
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                embed_sharded(ds, embedder, Path(tmp), {"source": src}, batch_size=batch_size,
                              progress=False)  # fmt: skip
                t_pipe.append(time.perf_counter() - t0)
    ratios = [b / p for b, p in zip(t_bare, t_pipe, strict=True)]
    mid = int(np.argsort(ratios)[len(ratios) // 2])  # the pair with the median ratio
    return {
        "embedder": name,
        "items": n,
        "batch_size": batch_size,
        "pipeline_items_per_s": n / t_pipe[mid],
        "bare_items_per_s": n / t_bare[mid],
        "ratio": ratios[mid],
        "ratios": ratios,
    }


def machine() -> dict[str, Any]:
    from threadpoolctl import threadpool_info

    blas = [
        {k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for i in threadpool_info()
    ]
    return {
        "cpus": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "threadpools": blas,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=256, help="items per embedder")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="paired timings (median reported)")
    p.add_argument("--embedders", default=DEFAULT, help=f"comma-separated [{DEFAULT}]")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        images, texts = Path(tmp) / "images", Path(tmp) / "texts.txt"
        images.mkdir()
        write_images(images, args.n)
        write_texts(texts, args.n)
        for name in args.embedders.split(","):
            src = str(texts) if name == "minilm" else str(images)
            try:
                rows.append(measure(name, src, args.n, args.batch_size, args.repeats))
            except ImportError as exc:  # an optional model that is not installed
                print(f"skipped {name}: {exc}", file=sys.stderr)
    print(f"{'embedder':<20} {'pipeline items/s':>17} {'bare items/s':>13} {'ratio':>6}")
    for r in rows:
        print(
            f"{r['embedder']:<20} {r['pipeline_items_per_s']:>17.1f} "
            f"{r['bare_items_per_s']:>13.1f} {r['ratio']:>6.2f}"
        )
    info = machine()
    print(json.dumps(info))
    if args.json:
        command = f"OMP_NUM_THREADS={info['OMP_NUM_THREADS']} python {' '.join(sys.argv)}"
        out = {"command": command, "rows": rows, "machine": info}
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
