import json

import pytest

from hirelc_deploy.errors import InputError
from hirelc_deploy.policy import SCHEMA_VERSION, Policy, load_policy


def _policy():
    return Policy.from_lists("resnet20", "cpu-ort-1t", ["layer1.0", "layer1.1"], [8, 16], ["int8", "fp32"],
                             predicted_latency_ms=0.5, notes={"why": "test"})


def test_round_trip(tmp_path):
    policy = _policy()
    again = load_policy(policy.save(tmp_path / "p.json"))
    assert again == policy and again.widths == [8, 16] and again.precisions == ["int8", "fp32"]
    assert json.loads((tmp_path / "p.json").read_text())["schema_version"] == SCHEMA_VERSION


def test_bad_policy_files(tmp_path):
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"bad\.json: not a policy"):
        load_policy(tmp_path / "bad.json")
    data = _policy().to_dict()
    data["schema_version"] = 99
    (tmp_path / "v.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"v\.json: schema_version 99"):
        load_policy(tmp_path / "v.json")


def test_check_against_model_and_target():
    policy = _policy()
    policy.check_against(["layer1.0", "layer1.1"], [16, 16], ("fp32", "int8"))
    with pytest.raises(InputError, match="blocks do not match"):
        policy.check_against(["layer1.0"], [16], ("fp32", "int8"))
    with pytest.raises(InputError, match="width 16 outside 1..8"):
        policy.check_against(["layer1.0", "layer1.1"], [16, 8], ("fp32", "int8"))
    with pytest.raises(InputError, match="precision 'int8' not offered"):
        policy.check_against(["layer1.0", "layer1.1"], [16, 16], ("fp32",))
