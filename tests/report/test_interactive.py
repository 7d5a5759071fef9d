"""The report's interactions in headless Chromium: sorting and filtering tables, the search
box, the panel of a training item with the generated samples that credited it (far ones
marked), and the banner that says the page is stale after ``value --append``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory, value_run):
    """300 real digits valued against 10 other digits and 5 noise images, with its report."""
    from gmvaluator.sources import load_source

    tmp = tmp_path_factory.mktemp("noisy")
    digits = load_source("builtin:digits[300:310]")
    noise = (np.random.default_rng(0).random((5, 8, 8)) * 255).astype(np.uint8)
    ids = [f"gen-{i}" for i in range(10)] + [f"noise-{i}" for i in range(5)]
    np.savez(tmp / "gen.npz", images=np.concatenate([digits.items.array, noise]), ids=ids)
    run = tmp / "run"
    value_run(run, "builtin:digits[:300]", tmp / "gen.npz", "--index", "auto", "--report")
    return run


def column(browser, selector: str, attr: str = "textContent") -> list[str]:
    return browser.execute_script(
        f"return [...document.querySelectorAll({selector!r})]"
        f".filter(e => !e.closest('[hidden]')).map(e => e.{attr});"
    )


def test_tables_sort_and_filter_and_the_search_box_narrows_the_page(
    browser, open_page, noisy_run
) -> None:
    from selenium.webdriver.common.by import By

    page = open_page(noisy_run / "report" / "index.html")
    assert page["errors"] == [] and page["scripts"] == ["report-js"]
    values = "table.items.most tbody tr td[data-value]"
    before = [float(v) for v in column(browser, values, "dataset.value")]
    header = browser.find_elements(By.CSS_SELECTOR, "table.items.most thead th")
    value_th = next(th for th in header if th.text.startswith("value"))
    value_th.click()
    desc = [float(v) for v in column(browser, values, "dataset.value")]
    assert desc == sorted(before, reverse=True)
    assert value_th.get_attribute("aria-sort") == "descending"
    value_th.click()
    assert [float(v) for v in column(browser, values, "dataset.value")] == sorted(before)

    ids = column(browser, "table.items.most tbody tr", "dataset.trainId")
    box = browser.find_element(By.CSS_SELECTOR, "input.table-filter")
    box.send_keys(ids[2])
    shown = column(browser, "table.items.most tbody tr", "dataset.trainId")
    assert ids[2] in shown and len(shown) < len(ids)
    box.clear()
    box.send_keys(" ")  # an empty filter shows every row again
    assert len(column(browser, "table.items.most tbody tr", "dataset.trainId")) == len(ids)

    search = browser.find_element(By.ID, "search")
    search.send_keys("noise-3")
    assert column(browser, "section.sample", "dataset.generatedId") == ["noise-3"]


def test_a_training_item_opens_its_panel_of_crediting_samples_with_far_ones_marked(
    browser, open_page, noisy_run
) -> None:
    from selenium.webdriver.common.by import By

    open_page(noisy_run / "report" / "index.html")
    assert column(browser, "section.train-item", "id") == []  # hidden until asked for
    att = pd.read_parquet(noisy_run / "attributions.parquet")
    gen = pd.read_parquet(noisy_run / "generated.parquet").set_index("generated_id")
    # a training item that a noise image credits
    noisy = att[att["generated_id"].str.startswith("noise") & (att["credit"] > 0)]
    shown = set(column(browser, "table.items tbody tr", "dataset.trainId"))
    item = next(t for t in noisy.sort_values("credit", ascending=False)["train_id"] if t in shown)
    link = browser.find_element(
        By.CSS_SELECTOR, f"table.items tr[data-train-id='{item}'] a.show-item"
    )
    link.click()
    panels = column(browser, "section.train-item", "dataset.trainId")
    assert panels == [item]
    rows = browser.execute_script(
        "return [...document.querySelectorAll('section.train-item:not([hidden]) tbody tr')]"
        ".map(r => [r.dataset.generatedId, parseFloat(r.querySelector('[data-credit]')"
        ".dataset.credit), r.classList.contains('far')]);"
    )
    expected = att[(att["train_id"] == item) & (att["credit"] > 0)]
    expected = expected.sort_values("credit", ascending=False, kind="stable")
    assert [r[0] for r in rows] == expected["generated_id"].tolist()
    np.testing.assert_allclose([r[1] for r in rows], expected["credit"], rtol=1e-12)
    for gid, _, far in rows:
        assert far == bool(gen.loc[gid, "share"] < 0.5), gid
    assert any(far for *_, far in rows)  # the noise image is marked far from all training data


def test_appending_marks_the_report_stale(browser, open_page, noisy_run, cli) -> None:
    page = open_page(noisy_run / "report" / "index.html")
    assert "out of date" not in page["text"]
    res = cli("value", "--append", noisy_run, "--generated", "builtin:digits[310:315]", "--quiet")
    assert res.exit_code == 0 and "out of date" in res.stdout
    page = open_page(noisy_run / "report" / "index.html")
    assert page["errors"] == []
    banner = browser.execute_script("return document.getElementById('stale-banner').innerText;")
    assert "out of date: samples were appended from builtin:digits[310:315]" in banner
    assert cli("report", noisy_run, "--overwrite").exit_code == 0
    assert "out of date" not in open_page(noisy_run / "report" / "index.html")["text"]
