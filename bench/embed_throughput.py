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


def write_images(folder: Path, n: int, size: int | None = None) -> None:
    """n real images as PNG: skimage's photos, then Fashion-MNIST (or digits) up to n; with
    ``size``, each resized to size x size pixels first (bilinear)."""
    import skimage.data

    from gmvaluator.sources import load_source
    from gmvaluator.sources.builtin import fashion_mnist_available

    photos = ["astronaut", "coffee", "chelsea", "camera", "rocket", "horse", "coins", "moon"]
    k = 0
    for name in photos[: min(len(photos), n)]:
        im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        _sized(im, size).save(folder / f"{k:06d}.png")
        k += 1
    spec = "builtin:fashion-mnist:test" if fashion_mnist_available() else "builtin:digits"
    arr = np.asarray(load_source(spec).items.array)
    for i in range(n - k):
        _sized(Image.fromarray(arr[i % len(arr)]), size).save(folder / f"{k + i:06d}.png")


def _sized(im: Image.Image, size: int | None) -> Image.Image:
    return im if size is None else im.resize((size, size), Image.Resampling.BILINEAR)


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
    """A function that runs only the model on the preprocessed batches, with the embedder's
    runtime and threads."""
    if name == "efficientnet-lite0":
        from gmvaluator.embed import onnx
        from gmvaluator.embed.efficientnet import onnx_model, preprocess, torch_features

        xs = [np.ascontiguousarray(preprocess(b)) for b in batches]
        if embedder.runtime == "onnx":
            sess = onnx.session(str(onnx_model("cpu")), embedder.threads, "cpu")
            return lambda: [sess.run(["features"], {"image": x}) for x in xs] and None
        return lambda: [torch_features(x, "cpu", embedder.threads) for x in xs] and None
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


def variants(name: str, cores: int) -> list[dict[str, Any]]:
    """The embedder options measured: today's torch pipeline on every core, then ONNX Runtime
    on one thread and on every core (the embedders without a runtime: one and every core)."""
    if name == "efficientnet-lite0":
        return [{"runtime": "torch", "threads": cores}, {"runtime": "onnx", "threads": 1},
                {"runtime": "onnx", "threads": cores}]  # fmt: skip
    if name in ("sscd", "sscd-distilled"):
        return [{"threads": 1}, {"threads": cores}]
    return [{}]


def measure(
    name: str, src: str, n: int, batch_size: int, repeats: int, options: dict[str, Any],
    reference: Callable[[], None] | None,
) -> dict[str, Any]:  # fmt: skip
    """Pipeline and bare forward of one variant, timed in pairs; with ``reference`` (the bare
    one-thread torch forward of the same batches) that too, in the same pairs."""
    from gmvaluator.embed import get_embedder
    from gmvaluator.embed.shards import embed_sharded
    from gmvaluator.embed.timing import collect_times
    from gmvaluator.sources import load_source

    embedder = get_embedder(name, device="cpu", **options) if options else get_embedder(name)
    ds = load_source(src)
    batches = [ds.items[s : s + batch_size] for s in range(0, n, batch_size)]
    embedder.embed_batch(batches[0][:2])  # load the model outside both timings
    bare = bare_forward(name, embedder, batches)
    bare()  # warm-up
    t_bare, t_pipe, t_ref, stages = [], [], [], []
    for r in range(repeats):
        # paired timings, in alternating order, so that load from other processes hits both
        order = ["bare", "pipe", "ref"] if r % 2 == 0 else ["ref", "pipe", "bare"]
        for which in order:
            if which == "ref":
                if reference is not None:
                    t0 = time.perf_counter()
                    reference()
                    t_ref.append(time.perf_counter() - t0)
                continue
            if which == "bare":
                t0 = time.perf_counter()
                bare()
                t_bare.append(time.perf_counter() - t0)
                continue
            with tempfile.TemporaryDirectory() as tmp, collect_times() as times:
                t0 = time.perf_counter()
                embed_sharded(ds, embedder, Path(tmp), {"source": src}, batch_size=batch_size,
                              progress=False)  # fmt: skip
                t_pipe.append(time.perf_counter() - t0)
            stages.append(times.record(""))
    ratios = [b / p for b, p in zip(t_bare, t_pipe, strict=True)]
    mid = int(np.argsort(ratios)[len(ratios) // 2])  # the pair with the median ratio
    row = {
        "embedder": name,
        "options": options,
        "items": n,
        "batch_size": batch_size,
        "pipeline_items_per_s": n / t_pipe[mid],
        "bare_items_per_s": n / t_bare[mid],
        "ratio": ratios[mid],
        "ratios": ratios,
        "stages_s": stages[mid],
    }
    if t_ref:
        row["torch_1_thread_bare_items_per_s"] = n / t_ref[mid]
        row["pipeline_over_torch_1_thread_bare"] = t_ref[mid] / t_pipe[mid]
        row["bare_over_torch_1_thread_bare"] = t_ref[mid] / t_bare[mid]
    return row


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


HEADER = (
    f"{'embedder':<20} {'options':<28} {'pipeline/s':>10} {'bare/s':>8} {'pipe/bare':>9} "
    f"{'pipe/torch1':>11} {'bare/torch1':>11}"
)


def print_row(r: dict[str, Any]) -> None:
    opts = ",".join(f"{k}={v}" for k, v in r["options"].items()) or "-"
    ref = [r.get("pipeline_over_torch_1_thread_bare"), r.get("bare_over_torch_1_thread_bare")]
    refs = " ".join(f"{v:>11.2f}" if v is not None else f"{'':>11}" for v in ref)
    print(
        f"{r['embedder']:<20} {opts:<28} {r['pipeline_items_per_s']:>10.1f} "
        f"{r['bare_items_per_s']:>8.1f} {r['ratio']:>9.2f} {refs}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=256, help="items per embedder")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3, help="paired timings (median reported)")
    p.add_argument("--embedders", default=DEFAULT, help=f"comma-separated [{DEFAULT}]")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--image-size", type=int, default=224, help="side of the PNG files written")
    p.add_argument("--threads", type=int, help="all cores [OMP_NUM_THREADS, else usable cores]")
    args = p.parse_args(argv)

    from gmvaluator.embed import get_embedder
    from gmvaluator.resources import thread_count
    from gmvaluator.sources import load_source

    cores = thread_count(args.threads)
    rows: list[dict[str, Any]] = []
    print(HEADER)
    with tempfile.TemporaryDirectory() as tmp:
        images, texts = Path(tmp) / "images", Path(tmp) / "texts.txt"
        images.mkdir()
        write_images(images, args.n, args.image_size)
        write_texts(texts, args.n)
        for name in args.embedders.split(","):
            src = str(texts) if name == "minilm" else str(images)
            try:
                reference = None
                if name == "efficientnet-lite0":
                    ref = get_embedder(name, runtime="torch", device="cpu", threads=1)
                    ds = load_source(src)
                    reference = bare_forward(name, ref, [
                        ds.items[s : s + args.batch_size] for s in range(0, args.n, args.batch_size)
                    ])  # fmt: skip
                for options in variants(name, cores):
                    row = measure(name, src, args.n, args.batch_size, args.repeats, options,
                                  reference)  # fmt: skip
                    rows.append(row)
                    print_row(row)
            except ImportError as exc:  # an optional model that is not installed
                print(f"skipped {name}: {exc}", file=sys.stderr)
    info = machine()
    print(json.dumps(info))
    if args.json:
        command = f"OMP_NUM_THREADS={info['OMP_NUM_THREADS']} python {' '.join(sys.argv)}"
        out = {"command": command, "rows": rows, "machine": info}
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
