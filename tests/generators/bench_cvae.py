"""Measure the CVAE on Fashion-MNIST: training time with the defaults and class accuracy of
samples judged by a logistic regression trained on the real test split. Not collected by pytest.

    PYTHONPATH=src python tests/generators/bench_cvae.py [--epochs N] [--n N]
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from gmvaluator.generators import default_epochs, train_cvae

ROOT = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--latent", type=int, default=16)
    args = ap.parse_args()
    x = read_idx(ROOT / "train-images-idx3-ubyte.gz")[: args.n]
    y = read_idx(ROOT / "train-labels-idx1-ubyte.gz")[: args.n]
    xt = read_idx(ROOT / "t10k-images-idx3-ubyte.gz")
    yt = read_idx(ROOT / "t10k-labels-idx1-ubyte.gz")
    epochs = args.epochs or default_epochs(len(x))
    print(f"torch threads {torch.get_num_threads()}, n {len(x)}, epochs {epochs}")
    t0 = time.perf_counter()
    c0 = time.process_time()
    model = train_cvae(
        x,
        y,
        n_classes=10,
        epochs=epochs,
        batch_size=args.batch_size,
        hidden=args.hidden,
        lr=args.lr,
        latent_dim=args.latent,
        seed=0,
        progress=False,
    )
    print(
        f"{vars(args)} train {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s cpu; loss per epoch {np.round(model.history, 1)}"
    )
    labels = np.repeat(np.arange(10), 100)
    t0 = time.perf_counter()
    gen = model.sample(labels, seed=1)
    print(f"sample 1000 in {time.perf_counter() - t0:.2f} s")
    clf = LogisticRegression(max_iter=1000).fit(xt.reshape(len(xt), -1) / 255.0, yt)
    print(
        f"classifier on real train (sanity): {clf.score(x[:10000].reshape(-1, 784) / 255.0, y[:10000]):.3f}"
    )
    pred = clf.predict(gen.reshape(len(gen), -1) / 255.0)
    per_class = [(pred[labels == c] == c).mean() for c in range(10)]
    print(
        f"sample class accuracy {np.mean(pred == labels):.3f}; per class {np.round(per_class, 2)}"
    )
    print(f"test loss {model.loss(xt, yt).mean():.1f} nats")


if __name__ == "__main__":
    main()
