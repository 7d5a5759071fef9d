"""The model-aware re-score: per-example gradients, projections, the TRAK score and its credit,
model files, and ``gmvaluator value --model FILE.py`` end to end on real digits."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from gmvaluator.errors import InputError
from gmvaluator.modelaware import Examples, GradientModel, load_model_file
from gmvaluator.modelaware.features import (
    FeatureSettings,
    GradientFeaturizer,
    Projector,
    example_batch,
    featurize,
)
from gmvaluator.modelaware.rescore import credit_from_scores, trak_scores
from gmvaluator.sources import load_source

GENERATED = "builtin:digits[1700:1720]"

#: A small class-conditional autoencoder on 8x8 digits, as a user's model file would define it.
MODEL_FILE = """
import torch
from PIL import Image
from torch import nn
from gmvaluator.modelaware import GradientModel


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(64 + 10, 12)
        self.dec = nn.Linear(12 + 10, 64)

    def forward(self, x, y):
        h = torch.tanh(self.enc(torch.cat([x, y], 1)))
        return self.dec(torch.cat([h, y], 1))


def prepare(examples):
    x = torch.from_numpy(examples.images("L").reshape(len(examples), -1)).float() / 255
    y = torch.nn.functional.one_hot(torch.tensor([int(v) for v in examples.labels]), 10)
    return {"x": x, "y": y.float()}


def loss(net, batch):
    return ((net(batch["x"], batch["y"]) - batch["x"]) ** 2).sum(1)


def load_model(checkpoint=None):
    torch.manual_seed(0)
    net = Net()
    if checkpoint:
        net.load_state_dict(torch.load(checkpoint, weights_only=True))
    return GradientModel(net, loss, prepare, name="tiny-ae")
"""


def _write_model(tmp: Path, text: str = MODEL_FILE, name: str = "model.py") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The model file and two checkpoints trained briefly on 300 real digits (two seeds)."""
    tmp = tmp_path_factory.mktemp("model")
    path = _write_model(tmp)
    ds = load_source("builtin:digits[:300]")
    checkpoints = []
    for seed in (0, 1):
        model = load_model_file(path)
        torch.manual_seed(seed)
        for p in model.module.parameters():
            torch.nn.init.normal_(p, std=0.1)
        batch = model.prepare(example_batch(ds, np.arange(len(ds))))
        opt = torch.optim.Adam(model.module.parameters(), lr=0.02)
        for _ in range(150):
            opt.zero_grad()
            model.loss(model.module, batch).mean().backward()
            opt.step()
        checkpoints.append(tmp / f"seed{seed}.pt")
        torch.save(model.module.state_dict(), checkpoints[-1])
    return path, checkpoints


def _tiny_model(noise: bool = False) -> GradientModel:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))

    def prepare(ex: Examples) -> dict[str, torch.Tensor]:
        return {"x": torch.from_numpy(np.stack(ex.items)).float()}

    def loss(m: torch.nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
        x = b["x"] + b["eps"] if "eps" in b else b["x"]
        return (m(x)[:, 0] - 1.0) ** 2

    def draw(n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        return {"eps": torch.randn((n, 4), generator=gen)}

    return GradientModel(net, loss, prepare, draw if noise else None, name="tiny")


def _vectors(n: int = 12):
    from gmvaluator.sources.base import Dataset

    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    return Dataset(name="vectors", kind="embedding", ids=np.array([f"v{i}" for i in range(n)]),
                   items=x)  # fmt: skip


def test_per_example_gradients_match_autograd_one_example_at_a_time() -> None:
    model = _tiny_model()
    ds = _vectors()
    f = GradientFeaturizer(model, FeatureSettings(dim=8))
    batch = dict(model.prepare(example_batch(ds, np.arange(len(ds)))))
    g = f.gradients(batch)
    assert f._vmap_ok is True
    for i in (0, 7):
        model.module.zero_grad()
        model.loss(model.module, {"x": batch["x"][i : i + 1]}).sum().backward()
        ref = torch.cat([p.grad.reshape(-1) for p in model.module.parameters()])
        assert torch.allclose(g[i], ref, atol=1e-6)
    assert torch.allclose(f._grads_loop(batch), g, atol=1e-6)


@pytest.mark.parametrize("kind", ["gaussian", "sparse"])
def test_projections_keep_inner_products_and_never_depend_on_the_batch(kind: str) -> None:
    rng = np.random.default_rng(1)
    g = torch.from_numpy(rng.normal(size=(6, 3000)).astype(np.float32))
    p = Projector(3000, 1024, kind, seed=3)
    out = p(g)
    exact, approx = (g @ g.T).numpy(), (out @ out.T).numpy()
    assert np.abs(np.diag(approx) / np.diag(exact) - 1).max() < 0.2
    assert torch.allclose(p(g[2:4]), out[2:4], atol=1e-4)  # rows alone give the same features
    assert torch.allclose(Projector(3000, 1024, kind, seed=3)(g), out)  # seeded
    assert not torch.allclose(Projector(3000, 1024, kind, seed=4)(g), out)


def test_noise_is_drawn_per_item_so_features_ignore_batch_order(tmp_path: Path) -> None:
    model, ds = _tiny_model(noise=True), _vectors()
    settings = FeatureSettings(dim=16, draws=3, batch_size=5)
    f = GradientFeaturizer(model, settings)
    ordered = featurize(f, ds, np.arange(12), tmp_path / "a")
    shuffled_rows = np.random.default_rng(0).permutation(12)
    shuffled = featurize(GradientFeaturizer(model, settings), ds, shuffled_rows, tmp_path / "b")
    np.testing.assert_allclose(shuffled, ordered[shuffled_rows], atol=1e-5)
    other = FeatureSettings(dim=16, draws=3, batch_size=5, seed=1)
    assert not np.allclose(featurize(GradientFeaturizer(model, other), ds, np.arange(12),
                                     tmp_path / "a"), ordered)  # fmt: skip


def test_features_resume_from_the_store_without_recomputing(tmp_path: Path) -> None:
    model, ds = _tiny_model(), _vectors()
    f = GradientFeaturizer(model, FeatureSettings(dim=8, batch_size=4))
    first = featurize(f, ds, np.arange(8), tmp_path)
    calls = []
    original = f.features
    f.features = lambda ex, keys: calls.append(len(ex)) or original(ex, keys)  # type: ignore[method-assign]
    again = featurize(f, ds, np.arange(12), tmp_path)
    assert calls == [4]  # only the 4 new items
    np.testing.assert_array_equal(again[:8], first)


def test_trak_score_is_the_ridge_regression_formula() -> None:
    rng = np.random.default_rng(0)
    phi, psi = rng.normal(size=(30, 5)), rng.normal(size=(4, 5))
    a, lam = trak_scores(phi, psi, phi, 30, ridge=2.0)
    k = phi.T @ phi
    assert lam == pytest.approx(2.0 * np.trace(k) / 5)
    expected = psi @ np.linalg.inv(k + lam * np.eye(5)) @ phi.T
    np.testing.assert_allclose((phi @ a).T, expected, rtol=1e-8)
    a_half, _ = trak_scores(phi, psi, phi[:15], 30, ridge=2.0)  # a sample is scaled up to n
    assert not np.allclose(a_half, a)


def test_credit_keeps_helpful_items_and_pays_each_sample_its_share() -> None:
    scores = np.array([[3.0, 1.0, -2.0], [-1.0, -0.5, np.nan], [0.0, 2.0, 2.0]])
    c = credit_from_scores(scores, quality=np.array([1.0, 1.0, 0.5]),
                           share=np.array([0.8, 1.0, 1.0]))  # fmt: skip
    np.testing.assert_allclose(c[0], [0.6, 0.2, 0.0])
    np.testing.assert_allclose(c[1], 0.0)  # nothing helped: nothing handed out
    np.testing.assert_allclose(c[2], [0.0, 0.25, 0.25])


def test_model_files_fail_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="failed to load: SyntaxError"):
        load_model_file(_write_model(tmp_path, "def load_model(:\n", "bad.py"))
    with pytest.raises(InputError, match="defines no load_model"):
        load_model_file(_write_model(tmp_path, "x = 1\n", "empty.py"))
    with pytest.raises(InputError, match="RuntimeError: no weights"):
        load_model_file(_write_model(tmp_path, "def load_model():\n    raise RuntimeError("
                                     "'no weights')\n", "raises.py"))  # fmt: skip
    with pytest.raises(InputError, match="without module, loss, prepare"):
        load_model_file(_write_model(tmp_path, "def load_model():\n    return 3\n", "int.py"))
    with pytest.raises(InputError, match="does not exist"):
        load_model_file(tmp_path / "missing.py")


def _value(cli, out: Path, model: Path, *extra: object, generated: str = GENERATED):
    return cli(
        "value", "--train", "builtin:digits[:300]", "--generated", generated, "--out", out,
        "--embedder", "pixels", "--k", "5", "--index", "exact", "--quiet", "--model", model,
        "--shortlist", "40", "--draws", "1", "--output-draws", "1", "--gradient-dim", "256",
        *extra,
    )  # fmt: skip


def test_value_with_a_model_file_end_to_end(cli, trained, tmp_path: Path) -> None:
    path, checkpoints = trained
    out = tmp_path / "run"
    res = _value(cli, out, path, "--checkpoints", str(checkpoints[0]))
    assert res.exit_code == 0, res.output
    att = pd.read_parquet(out / "attributions.parquet")
    assert {"score", "credit"} <= set(att.columns) and len(att) == 20 * 40
    labels = load_source("builtin:digits").labels
    rows = att["train_row"].to_numpy()
    gen_rows = att["generated_id"].str.extract(r"(\d+)$")[0].astype(int).to_numpy()
    scored = att["score"].notna().to_numpy()
    assert (labels[rows[scored]] == labels[gen_rows[scored]]).all()  # own label shortlisted
    assert (att.loc[~scored, "credit"] == 0).all() and (att["credit"] >= 0).all()
    per_sample = att.groupby("generated_id")["credit"].sum()
    assert ((per_sample <= 1 + 1e-9) & (per_sample > 0)).all()
    # the credited items are those that helped: positive scores only, largest first
    top = att.groupby("generated_id").head(1)
    assert (top["score"] > 0).all()
    record = json.loads((out / "run.json").read_text())
    info = record["model_aware"]
    assert info["method"] == "model-aware" and info["by_label"] is True
    assert info["gradient_items"] <= 300 and info["model_name"] == "tiny-ae"
    values = pd.read_parquet(out / "values.parquet")
    assert values["value"].sum() == pytest.approx(att["credit"].sum())
    assert any((out / "gradients").rglob("part-*.npy"))
    # a second model gives other credits: the scores follow the model
    other = tmp_path / "run2"
    assert _value(cli, other, path, "--checkpoints", str(checkpoints[1])).exit_code == 0
    att2 = pd.read_parquet(other / "attributions.parquet")
    assert not np.allclose(att2["score"].fillna(0), att["score"].fillna(0))
    # append, ledger and report handle the model-aware run
    res = cli("value", "--append", out, "--generated", "builtin:digits[1720:1730]", "--quiet")
    assert res.exit_code == 0, res.output
    att3 = pd.read_parquet(out / "attributions.parquet")
    assert len(att3) == 30 * 40 and att3["score"].notna().any()
    assert cli("report", out).exit_code == 0
    page = (out / "report" / "index.html").read_text()
    assert "model-aware" in page
    # the service answers training-free credits, says so, and keeps them out of the ledger
    from gmvaluator.service.attributor import Attributor, ConflictError

    service = Attributor.from_run(out)
    png = io.BytesIO()
    Image.fromarray(np.asarray(load_source("builtin:digits[5:6]").items.array)[0]).save(png, "PNG")
    answer = service.attribute_image(png.getvalue())
    assert answer["method"] == "training-free" and answer["run_method"] == "model-aware"
    with pytest.raises(ConflictError, match="mix two methods"):
        service.attribute_image(png.getvalue(), record=True)
    service.close()


def test_an_ensemble_averages_the_checkpoints_scores(cli, trained, tmp_path: Path) -> None:
    path, checkpoints = trained
    runs = []
    for name, ck in (("a", [checkpoints[0]]), ("b", [checkpoints[1]]), ("ab", checkpoints)):
        out = tmp_path / name
        res = _value(cli, out, path, "--checkpoints", ",".join(map(str, ck)), "--by-label", "no")
        assert res.exit_code == 0, res.output
        runs.append(pd.read_parquet(out / "attributions.parquet"))
    key = ["generated_id", "train_row"]
    a, b, ab = (r.set_index(key)["score"] for r in runs)
    assert json.loads((tmp_path / "ab" / "run.json").read_text())["model_aware"]["models"] == 2
    np.testing.assert_allclose(ab.sort_index(), ((a + b) / 2).sort_index(), rtol=1e-4, atol=1e-9)


BROKEN = {
    "scalar loss": ('return ((net(batch["x"], batch["y"]) - batch["x"]) ** 2).sum(1)',
                    'return ((net(batch["x"], batch["y"]) - batch["x"]) ** 2).sum()',
                    "one value per example"),
    "wrong inputs": ("self.enc = nn.Linear(64 + 10, 12)", "self.enc = nn.Linear(784 + 10, 12)",
                     "cannot take items"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_model_stops_the_run_with_a_clear_error(cli, tmp_path: Path, case: str) -> None:
    old, new, message = BROKEN[case]
    assert old in MODEL_FILE
    path = _write_model(tmp_path, MODEL_FILE.replace(old, new))
    res = _value(cli, tmp_path / "run", path)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    res = _value(cli, tmp_path / "run2", _write_model(tmp_path, "import nosuchmodule\n", "b.py"))
    assert res.exit_code == 2 and "ModuleNotFoundError" in res.output


@pytest.mark.parametrize("family", ["cvae", "gan", "diffusion"])
def test_the_reference_generators_ship_their_gradient_model(family: str, tmp_path: Path) -> None:
    from gmvaluator.evaluate.generators.reference import train_reference
    from gmvaluator.run.rescore import check_model

    ds = load_source("builtin:digits[:200]")
    x, y = np.asarray(ds.items.array), np.asarray(ds.labels)
    gen = train_reference(family, x, y, n_classes=10, seed=0, epochs=1)
    model = gen.gradient_model()
    outputs = ["loss", *model.outputs]
    for output in outputs:
        check_model(model, ds, ds, output)
        f = GradientFeaturizer(model, FeatureSettings(dim=64, draws=2), output)
        feats = featurize(f, ds, np.arange(6), tmp_path / output)
        assert feats.shape == (6, 64) and np.isfinite(feats).all() and np.abs(feats).sum() > 0
    unlabelled = load_source("builtin:digits[:4]")
    object.__setattr__(unlabelled, "labels", None)
    with pytest.raises(InputError, match="class-conditional"):
        model.prepare(example_batch(unlabelled, np.arange(4)))


def test_the_example_model_file_values_a_saved_reference_generator(cli, tmp_path: Path) -> None:
    from gmvaluator.evaluate.generators.reference import train_reference

    ds = load_source("builtin:digits[:300]")
    gen = train_reference("cvae", np.asarray(ds.items.array), np.asarray(ds.labels),
                          n_classes=10, seed=0, epochs=3)  # fmt: skip
    gen.save(tmp_path / "generator")
    example = Path(__file__).resolve().parents[2] / "examples" / "reference_model.py"
    res = _value(cli, tmp_path / "run", example, "--checkpoints", str(tmp_path / "generator"))
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())["model_aware"]
    assert info["model_name"] == "cvae" and info["per_example_gradients"] == "torch.func.vmap"
