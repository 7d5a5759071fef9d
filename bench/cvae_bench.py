"""Measure the CVAE on Fashion-MNIST (not collected by pytest): training time with the defaults,
and the class accuracy of generated samples judged by a logistic regression on raw pixels that
was trained on the real test split.

    OMP_NUM_THREADS=1 PYTHONPATH=src python bench/cvae_bench.py [--epochs N] ...
"""

from __future__ import annotations

import argparse
import gzip
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from gmvaluator.evaluate.generators import default_epochs, train_cvae

ROOT = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip) as a uint8 array: magic, one byte of ndim, then big-endian sizes."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1) / 255.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=None, help="default: default_epochs(n)")
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--beta", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    x = read_idx(ROOT / "train-images-idx3-ubyte.gz")[: args.n]
    y = read_idx(ROOT / "train-labels-idx1-ubyte.gz")[: args.n]
    xt = read_idx(ROOT / "t10k-images-idx3-ubyte.gz")
    yt = read_idx(ROOT / "t10k-labels-idx1-ubyte.gz")
    epochs = args.epochs or default_epochs(len(x))
    print(f"{vars(args)} epochs {epochs}, torch threads outside training {torch.get_num_threads()}")

    t0, c0 = time.perf_counter(), time.process_time()
    model = train_cvae(
        x,
        y,
        n_classes=10,
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        seed=args.seed,
    )
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"train: {wall:.1f} s wall, {cpu:.1f} s cpu; objective {np.round(model.history, 1)}")

    labels = np.repeat(np.arange(10), 500)
    t0 = time.perf_counter()
    generated = model.sample(labels, seed=1)
    print(f"sample 5000: {time.perf_counter() - t0:.2f} s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=1000).fit(flat(xt), yt)
    real = clf.score(flat(x[:10_000]), y[:10_000])
    print(f"judge accuracy on 10,000 real training images: {real:.3f}")
    pred = clf.predict(flat(generated))
    per_class = [np.mean(pred[labels == c] == c) for c in range(10)]
    print(
        f"sample class accuracy {np.mean(pred == labels):.3f}; per class {np.round(per_class, 2)}"
    )
    print(f"test negative ELBO {model.loss(xt, yt).mean():.1f} nats")


if __name__ == "__main__":
    main()
