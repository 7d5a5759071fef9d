"""The fixed valuations of ``golden_cases.py`` still write the values and attributions stored
before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from golden_cases import COMPARED, EXPECTED, run_cases


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return run_cases(tmp_path_factory.mktemp("golden"))


@pytest.mark.parametrize("name", sorted(p.name for p in EXPECTED.iterdir()))
@pytest.mark.parametrize("file", COMPARED)
def test_outputs_equal_the_stored_ones(folders, name, file):
    got = pd.read_parquet(folders[name] / file)
    want = pd.read_parquet(EXPECTED / name / file)
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for col in want.columns:
        a, b = got[col].to_numpy(), want[col].to_numpy()
        if np.issubdtype(b.dtype, np.floating):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=f"{name}/{file}:{col}")
        else:
            assert (a == b).all(), f"{name}/{file}: column {col} differs"


def test_every_case_is_stored(folders):
    assert sorted(folders) == sorted(p.name for p in EXPECTED.iterdir())
