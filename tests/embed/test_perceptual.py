"""Perceptual distances (LPIPS in plain torch) with weights files the tests write themselves."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from PIL import Image, ImageFilter

from gmvaluator.errors import InputError, MissingDependencyError

torch = pytest.importorskip("torch")

from gmvaluator.embed.perceptual import (  # noqa: E402
    BACKBONE_FILES,
    LpipsDistance,
    _build_lpips,
    load_lpips,
    lpips_tensor,
)

_PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "horse"]


def write_weights(folder, net="alex", seed=0):  # type: ignore[no-untyped-def]
    """A random backbone in torchvision's layout (with a classifier to be ignored) and random
    non-negative linear layers in the lpips package's layout, as the two files LPIPS reads."""
    torch.manual_seed(seed)
    model = _build_lpips(net)
    backbone = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    backbone["classifier.1.weight"] = torch.randn(10, 4)
    linear = {f"lin{i}.model.1.weight": torch.rand_like(lin.weight)
              for i, lin in enumerate(model.lins)}  # fmt: skip
    paths = folder / BACKBONE_FILES[net], folder / f"{net}.pth"
    torch.save(backbone, paths[0])
    torch.save(linear, paths[1])
    return paths


@pytest.fixture
def lpips_env(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    backbone, linear = write_weights(tmp_path)
    monkeypatch.setenv("GMVALUATOR_LPIPS_WEIGHTS", str(backbone))
    monkeypatch.setenv("GMVALUATOR_LPIPS_LINEAR", str(linear))
    load_lpips.cache_clear()
    return backbone, linear


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    import skimage.data

    out = []
    for name in _PHOTOS:
        im = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        im.thumbnail((160, 160))
        out.append(im)
    return out


def test_lpips_is_zero_on_itself_positive_and_symmetric(lpips_env, photos):
    lp = LpipsDistance()
    d = np.array([lp.distances(x, photos) for x in photos])
    assert d.shape == (5, 5) and np.isfinite(d).all()
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-6)
    off = d[~np.eye(5, dtype=bool)]
    assert (off > 1e-3).all()
    np.testing.assert_allclose(d, d.T, rtol=1e-5)
    assert len(np.unique(off.round(6))) > 5  # not one constant for every pair


def test_lpips_puts_a_mildly_blurred_copy_nearer_than_other_photos(lpips_env, photos):
    lp = LpipsDistance()
    for i, x in enumerate(photos):
        copy = x.filter(ImageFilter.GaussianBlur(1))
        d = lp.distances(copy, photos)
        assert int(np.argmin(d)) == i, d


def test_lpips_batches_do_not_change_distances(lpips_env, photos):
    one = LpipsDistance(batch_size=1).distances(photos[0], photos)
    many = LpipsDistance(batch_size=16).distances(photos[0], photos)
    np.testing.assert_allclose(one, many, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package_on_the_same_weights(tmp_path, monkeypatch, photos, net):
    """The package's own LPIPS forward is the oracle. Its code imports torchvision only to build
    the backbone, so torchvision is replaced by one that returns our backbone."""
    import importlib.util

    if importlib.util.find_spec("lpips") is None:
        pytest.skip("the lpips package is not installed (pip install --no-deps lpips==0.1.4)")
    backbone, linear = write_weights(tmp_path, net)
    ours = load_lpips(str(backbone), str(linear), net)

    class Trunk:
        def __init__(self, pretrained: bool = False, **_: object) -> None:
            last = torch.nn.MaxPool2d(2 if net == "vgg" else 3, 2)  # unused by LPIPS
            self.features = torch.nn.Sequential(*ours.features, last)

    models = types.ModuleType("torchvision.models")
    models.alexnet = models.vgg16 = models.squeezenet1_1 = Trunk  # type: ignore[attr-defined]
    tv = types.ModuleType("torchvision")
    tv.models = models  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
        monkeypatch.delitem(sys.modules, name)
    import lpips

    ref = lpips.LPIPS(net=net, model_path=str(linear), verbose=False)
    with torch.inference_mode():
        for a, b in [(photos[0], photos[1]), (photos[2], photos[3])]:
            x, y = lpips_tensor(a, 96), lpips_tensor(b, 96)
            np.testing.assert_allclose(float(ours(x, y)), float(ref(x, y)), rtol=1e-5)


def test_missing_backbone_names_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("GMVALUATOR_LPIPS_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(MissingDependencyError, match=r"nope.pth', which does not exist.*"
                       r"alexnet-owt-7be5be79.pth.*GMVALUATOR_LPIPS_WEIGHTS=PATH"):  # fmt: skip
        LpipsDistance()
    monkeypatch.delenv("GMVALUATOR_LPIPS_WEIGHTS")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub_file = tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    with pytest.raises(MissingDependencyError, match=r"GMVALUATOR_LPIPS_WEIGHTS is not set and "
                       f"'{hub_file}' does not exist"):  # fmt: skip
        LpipsDistance()


def test_backbone_is_found_in_an_already_populated_torch_hub_cache(tmp_path, monkeypatch, photos):
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    _, linear = write_weights(checkpoints)
    monkeypatch.delenv("GMVALUATOR_LPIPS_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GMVALUATOR_LPIPS_LINEAR", str(linear))
    lp = LpipsDistance()
    assert lp.backbone == checkpoints / "alexnet-owt-7be5be79.pth"
    assert lp.distances(photos[0], photos[:2])[1] > 0


def test_missing_linear_layers_name_the_fix(lpips_env, tmp_path, monkeypatch):
    monkeypatch.setenv("GMVALUATOR_LPIPS_LINEAR", str(tmp_path / "lin.pth"))
    with pytest.raises(MissingDependencyError, match=r"lin.pth', which does not exist.*"
                       r"pip install --no-deps lpips"):  # fmt: skip
        LpipsDistance()


def test_weights_of_another_network_are_refused(tmp_path, monkeypatch, lpips_env, photos):
    (tmp_path / "vgg").mkdir()
    backbone, _ = write_weights(tmp_path / "vgg", "vgg")
    monkeypatch.setenv("GMVALUATOR_LPIPS_WEIGHTS", str(backbone))
    with pytest.raises(InputError, match=r"do not fit the alex network.*missing or of the wrong"):
        LpipsDistance().distances(photos[0], photos[:1])
    monkeypatch.setenv("GMVALUATOR_LPIPS_WEIGHTS", str(lpips_env[1]))  # linear file as backbone
    with pytest.raises(InputError, match=r"has no features\.\* tensors"):
        LpipsDistance().distances(photos[0], photos[:1])


def test_dreamsim_absent_or_failing_to_import_is_named_with_its_cause(tmp_path, monkeypatch):
    """DreamSim runs through its package, which imports torchvision: here that import fails
    (PyPI's torchvision does not load beside this torch build). The error must say so."""
    from gmvaluator.core.rerank import check_rerank
    from gmvaluator.embed.deps import import_optional
    from gmvaluator.embed.perceptual import dreamsim_distance

    monkeypatch.setenv("GMVALUATOR_DREAMSIM_WEIGHTS", str(tmp_path))
    monkeypatch.setitem(sys.modules, "dreamsim", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"rerank='dreamsim' needs the package "
                       r"'dreamsim', which is not installed.*pip install dreamsim"):  # fmt: skip
        check_rerank("dreamsim")
    monkeypatch.delitem(sys.modules, "dreamsim")
    pkg = tmp_path / "libs" / "dreamsim"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms missing')")
    monkeypatch.syspath_prepend(str(tmp_path / "libs"))
    with pytest.raises(MissingDependencyError, match=r"'dreamsim', which is installed but fails "
                       r"to import: RuntimeError: operator torchvision::nms"):  # fmt: skip
        dreamsim_distance(tmp_path)
    with pytest.raises(MissingDependencyError, match=r"'no_such_pkg', which is not installed"):
        import_optional("no_such_pkg", "no_such_pkg", "this")


def test_linear_layers_come_from_the_lpips_package_files(tmp_path, monkeypatch, photos):
    import importlib.util

    backbone, _ = write_weights(tmp_path)
    monkeypatch.setenv("GMVALUATOR_LPIPS_WEIGHTS", str(backbone))
    monkeypatch.delenv("GMVALUATOR_LPIPS_LINEAR", raising=False)
    if importlib.util.find_spec("lpips") is not None:
        lp = LpipsDistance()
        assert lp.linear.parts[-4:] == ("lpips", "weights", "v0.1", "alex.pth")
        d = lp.distances(photos[0], photos[:2])
        assert d[0] == pytest.approx(0, abs=1e-6) and d[1] > 0
    monkeypatch.setitem(sys.modules, "lpips", None)  # as if the package were not installed
    fix = r"\(alex.pth of the lpips package\), which were not found.*pip install --no-deps lpips"
    with pytest.raises(MissingDependencyError, match=fix):
        LpipsDistance()
