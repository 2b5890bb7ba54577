import json

import pytest

from hirelc_deploy.errors import TableError
from hirelc_deploy.latency.table import SCHEMA_VERSION, load_table
from hirelc_deploy.targets import Fingerprint, current_fingerprint, load_target

from .conftest import toy_table as _table


def test_predict_adds_blocks_fixed_and_boundaries():
    table = _table()
    assert table.predict([8, 8], ["fp32", "fp32"]) == pytest.approx(10 + 2 + 4)
    assert table.predict([4, 8], ["int8", "int8"]) == pytest.approx(10 + 0.5 + 2.0 + 0.1 + 0.4)
    # fp32 -> int8 at boundary 1, then int8 -> head at boundary 2
    assert table.predict([8, 4], ["fp32", "int8"]) == pytest.approx(10 + 2 + 1.5 + 0.2 + 0.4)
    # int8 first block: stem -> int8 at boundary 0, int8 -> fp32 at boundary 1
    assert table.predict([8, 4], ["int8", "fp32"]) == pytest.approx(10 + 1 + 3 + 0.1 + 0.3)


def test_predict_rejects_widths_not_in_table():
    with pytest.raises(TableError, match="b0: inner width 6 not in table"):
        _table().predict([6, 8], ["fp32", "fp32"])
    with pytest.raises(TableError, match="2 blocks"):
        _table().predict([8], ["fp32"])


def test_round_trip(tmp_path):
    table = _table()
    path = table.save(tmp_path / "t.json")
    again = load_table(path)
    assert again == table
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_other_schema_version_is_refused(tmp_path):
    path = _table().save(tmp_path / "t.json")
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(TableError, match=r"t\.json: schema_version"):
        load_table(path)


def test_corrupt_and_missing_tables(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TableError, match=r"bad\.json: not valid JSON"):
        load_table(tmp_path / "bad.json")
    with pytest.raises(TableError, match="not found"):
        load_table(tmp_path / "none.json")


def test_fingerprint_mismatch_is_an_error_unless_forced():
    here = current_fingerprint(load_target("cpu-ort-1t"))
    other = Fingerprint.from_dict({**here.to_dict(), "cpu_model": "Some Other CPU", "threads": 4})
    table = _table(other.to_dict())
    with pytest.raises(TableError, match="another device.*cpu_model.*threads"):
        table.check_device(here)
    table.check_device(here, force=True)
    _table().check_device(here)


def test_isolated_blocks_save_a_fraction_of_their_boundary_costs():
    table = _table()
    table.transitions_ms = [{"fp32->int8": 0.1}, {"fp32->int8": 0.2, "int8->fp32": 0.3}, {"int8->fp32": 0.4}]
    # block 0 is int8 between the FP32 stem and an FP32 block 1: isolated, mean boundary cost (0.1 + 0.3) / 2
    assert table.isolated_saving(["int8", "fp32"]) == pytest.approx(0.2)
    assert table.isolated_saving(["int8", "int8"]) == 0.0
    table.isolated_block_factor = 0.5
    assert table.predict([8, 8], ["int8", "fp32"]) == pytest.approx(10 + 1 + 4 + 0.1 + 0.3 - 0.5 * 0.2)
