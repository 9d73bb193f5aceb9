"""The shipped IMDB-WIKI-DIR configs read a CSV laid out like DIR's imdb_wiki.csv.

DIR's script keeps training ages up to 200 (validation and test hold ages 0 .. 120), so a file
with a 200-year-old training row must load with every shipped IMDB-WIKI config.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ihmr.age.config import AgeConfig
from ihmr.age.data import read_age_csv
from ihmr.age.metrics import AgeMetrics
from ihmr.config import load_config
from ihmr.errors import DataError

CONFIGS = sorted(
    p
    for p in (Path(__file__).parents[2] / "configs" / "age").glob("*.yaml")
    if "imdb_wiki" in p.read_text()
)


def _dir_like_csv(path: Path) -> Path:
    rows = ["age,path,split"]
    for i, age in enumerate([0, 25, 120, 121, 150, 200]):
        rows.append(f"{age},imdb_crop/{i:02d}/nm{i}_rm{i}_{1990 - age}-01-01_1990.jpg,train")
    for split in ("val", "test"):
        for age in (0, 60, 120):
            rows.append(f"{age},wiki_crop/{split}_{age}.jpg,{split}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_there_are_imdb_wiki_configs():
    assert len(CONFIGS) >= 7


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_shipped_imdb_wiki_config_loads_training_ages_up_to_200(tmp_path, config):
    csv = _dir_like_csv(tmp_path / "imdb_wiki.csv")
    cfg = load_config(AgeConfig, config, [])
    table = read_age_csv(csv, tuple(cfg.data.label_range))
    assert table.counts() == {"train": 6, "val": 3, "test": 3}
    assert float(table.subset("train").ages.max()) == 200.0


def test_default_range_still_refuses_out_of_range_ages(tmp_path):
    with pytest.raises(DataError, match="lines \\[7\\]"):  # the 200-year-old row
        read_age_csv(_dir_like_csv(tmp_path / "imdb_wiki.csv"), (0.0, 150.0))


def test_metrics_count_a_200_year_old_training_age():
    m = AgeMetrics(np.array([200.0] * 150 + [30.0] * 5))
    assert m.train_counts[200] == 150 and m.train_counts[30] == 5
    m.update(np.array([190.0, 33.0]), np.array([200.0, 30.0]))
    res = m.compute()
    assert res["many"]["l1"] == pytest.approx(10.0) and res["few"]["l1"] == pytest.approx(3.0)
