"""Fixtures of the report tests: headless Chromium driven by selenium, and real runs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium that records console messages; skipped where it is not installed."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("Chromium is not installed (scripts/setup.sh all,dev installs it as root)")
    profile = tempfile.mkdtemp(prefix="gmvaluator-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# What the page shows, gathered in one round trip: images, sections, tables.
PAGE_STATE_JS = """
const imgs = [...document.images];
return {
  ready: document.readyState,
  n_images: imgs.length,
  broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
  scripts: [...document.scripts].map(s => s.id),
  samples: [...document.querySelectorAll('section.sample')].map(s => ({
    id: s.dataset.generatedId,
    has_img: !!s.querySelector('.gen img'),
    gen_text: (s.querySelector('.gen .snippet') || {textContent: null}).textContent,
    contributors: [...s.querySelectorAll('li.contrib')].map(li => ({
      id: li.dataset.trainId, credit: parseFloat(li.dataset.credit),
      distance: parseFloat(li.dataset.distance),
      credit_text: li.querySelector('.credit').textContent,
      has_img: !!li.querySelector('img'), near_copy: li.classList.contains('near-copy'),
      text: (li.querySelector('.snippet') || {textContent: null}).textContent,
    })),
  })),
  most: [...document.querySelectorAll('table.items.most tbody tr')].map(r => ({
    id: r.dataset.trainId, value: parseFloat(r.querySelector('[data-value]').dataset.value),
    text: r.querySelector('[data-value]').textContent })),
  leaderboard: [...document.querySelectorAll('table.leaderboard tbody tr')].map(r => ({
    id: r.dataset.contributor, credit: parseFloat(r.querySelector('[data-credit]').dataset.credit)
  })),
  zero: (document.getElementById('zero-credit') || {textContent: null}).textContent,
  gini: (document.getElementById('gini') || {textContent: null}).textContent,
  text: document.body.innerText,
};
"""


@pytest.fixture
def open_page(browser):
    """Load a report; its state and the browser's severe console messages as a dict."""

    def load(path: Path) -> dict:
        browser.get_log("browser")  # drop the messages of earlier pages
        browser.get(path.resolve().as_uri())
        state = browser.execute_script(PAGE_STATE_JS)
        state["errors"] = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        return state

    return load


@pytest.fixture
def synthetic_run():
    return build_synthetic_run


#: Markup where an id belongs: a report must show it, never run it.
HOSTILE = '<script>alert("id")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def hostile():
    return HOSTILE


@pytest.fixture
def hostile_run():
    """``hostile_run(path)``: a small synthetic run whose training ids, contributors, generated
    ids start with ``HOSTILE`` markup, and its evaluation's file, valuer and setup are markup."""

    def build(path: Path) -> Path:
        import pandas as pd

        from gmvaluator.files import write_json

        run = build_synthetic_run(path, n=400, m=6, k=3)
        for name, cols in (
            ("values.parquet", ["train_id", "contributor"]),
            ("attributions.parquet", ["train_id", "generated_id"]),
        ):
            df = pd.read_parquet(run / name)
            for col in cols:
                df[col] = HOSTILE + df[col].astype(str)
            df.to_parquet(run / name)
        est = {"mean": 0.5, "ci95": [0.4, 0.6]}
        evaluation = {"setup": {"note": "<i>x</i>"}, "valuers": {"<b>valuer</b>": {"k=3": est}}}
        (run / "eval").mkdir()
        write_json(run / "eval" / "<img src=x onerror=alert(2)>.json", evaluation)
        return run

    return build


def build_synthetic_run(path: Path, n: int, m: int, k: int, seed: int = 0) -> Path:
    """A finished run folder with made-up matches over precomputed embeddings, written fast.

    Popularity is skewed (a few items are matched often, most never), ten classes, and
    ``n // 200`` contributors, as a large real run would have.
    """
    from gmvaluator.core.result import ValuationResult
    from gmvaluator.files import save_npy, write_json

    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    train_ids = np.char.add("row-", np.arange(n).astype(str))
    gen_ids = np.char.add("gen-", np.arange(m).astype(str))
    indices = (rng.pareto(0.8, size=(m, k)) * 2000).astype(np.int64) % n
    distances = np.sort(rng.uniform(0.0, 0.6, size=(m, k)), axis=1)
    quality = rng.uniform(0.5, 1.0, size=m)
    weights = np.exp(-(distances - distances[:, :1]) / 0.05)
    credits = quality[:, None] * weights / weights.sum(axis=1, keepdims=True)
    result = ValuationResult(
        train_ids=train_ids,
        generated_ids=gen_ids,
        values=np.bincount(indices.ravel(), weights=credits.ravel(), minlength=n),
        n_matches=np.bincount(indices.ravel(), minlength=n),
        distances=distances,
        indices=indices,
        credits=credits,
        quality=quality,
        config={"index": {"factory": "IVF4000,PQ16x8", "n_candidates": 100}, "distance": "cosine"},
        recall=0.97,
        recall_queries=1000,
    )
    labels = np.arange(n) % 10
    owners = np.char.add("c", np.arange(n // 200).astype(str))
    result.save(path, label=labels, contributor=owners[np.arange(n) % len(owners)])
    save_npy(path / "train.npy", rng.standard_normal((n, 2)).astype(np.float32))
    np.savez(path / "generated.npz", embeddings=rng.standard_normal((m, 2)).astype(np.float32),
             ids=gen_ids, labels=rng.integers(0, 10, size=m))  # fmt: skip
    write_json(
        path / "config.json",
        {"train": str(path / "train.npy"), "generated": str(path / "generated.npz"),
         "embedder": "precomputed", "k": k, "metric": "cosine", "temperature": 0.05,
         "quality": "quality.csv"},
    )  # fmt: skip
    write_json(
        path / "run.json",
        {"counts": result.summary(), "index": result.config["index"], "distance": "cosine",
         "recall": {"recall_at_k": 0.97, "k": k, "queries": 1000}, "timings": {"total_s": 1.0}},
    )  # fmt: skip
    return path
