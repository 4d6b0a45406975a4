"""Scenario loading, overrides and every validation error."""

from __future__ import annotations

import pytest

from psl_env.system.scenario import (
    ScenarioError, available_scenarios, build_scenario, load_scenario, parse_overrides, scenario_reference_markdown,
)

REQUIRED_KEYS = ("num_clients", "num_subchannels", "model", "scheme", "phi", "batch_size", "csi", "seed")


def test_shipped_scenarios_load_and_have_required_keys():
    names = available_scenarios()
    assert {"epsl-resnet18", "edgesplit-vgg16", "small-exact", "digits-train"} <= set(names)
    for name in names:
        d = load_scenario(name).to_dict()
        for key in REQUIRED_KEYS:
            assert key in d


def test_overrides_parse_yaml_scalars_and_reach_nested_keys():
    s = load_scenario("epsl-resnet18", ["phi=0.3", "num_clients=4", "channel.correlation=doppler",
                                        "devices.compute_flops=[1e9, 4e10]", "channel.mobility=true"])
    assert s.phi == 0.3 and s.num_clients == 4 and s.channel.correlation == "doppler"
    assert s.devices.compute_flops == [1e9, 4e10] and s.channel.mobility is True
    assert parse_overrides(["name=x=y"]) == {"name": "x=y"}


@pytest.mark.parametrize("overrides, fragment", [
    (["bogus=1"], "bogus: unknown key; allowed:"),
    (["channel.bogus=1"], "channel.bogus: unknown key; allowed:"),
    (["bogus.x=1"], "bogus: unknown section; allowed: ['channel', 'devices', 'dynamics', 'server', 'training']"),
    (["channel.foo.bar=1"], "channel.foo: unknown key; allowed: ['carrier_hz', 'correlation'"),
    (["channel.correlation.x=1"], "channel.correlation: is a value, not a section"),
    (["devices.classes=[{count: 5}]"], "devices.classes: given, but devices.kind is 'loguniform'"),
    (["channel.trace_file=[1, 2]"], "channel.trace_file: expected a path (a non-empty string)"),
    (["training.data_dir=3"], "training.data_dir: expected a path"),
    (["num_clients=many"], "num_clients: expected an integer in [1, 1000]"),
    (["num_clients=2.5"], "num_clients: expected an integer"),
    (["phi=1.5"], "phi: 1.5 is out of range; allowed in [0, 1]"),
    (["phi=-0.1"], "phi: -0.1 is out of range"),
    (["batch_size=0"], "batch_size: 0 is out of range"),
    (["scheme=splitfed"], "scheme: 'splitfed' is not allowed; allowed: ['psl', 'epsl', 'sfl', 'edgesplit']"),
    (["csi=stale"], "csi: 'stale' is not allowed; allowed: ['perfect', 'delayed']"),
    (["channel.mobility=3"], "channel.mobility: expected true or false"),
    (["num_subchannels=4"], "num_subchannels: 4 is fewer than num_clients=5"),
    (["scheme=edgesplit"], "phi: 0.5 is not allowed with scheme='edgesplit' (per-device cuts require phi = 0)"),
    (["scheme=psl"], "phi: 0.5 is not allowed with scheme='psl'"),
    (["channel.correlation=1.5"], "channel.correlation: 1.5 is not allowed; allowed: a number in [0, 1] or 'doppler'"),
    (["devices.compute_flops=[3e9]"], "devices.compute_flops: expected [low, high]"),
    (["devices.compute_flops=[4e10, 1e9]"], "devices.compute_flops: low 4e+10 exceeds high 1e+09"),
    (["devices.kind=classes"], "devices.classes: counts sum to 0, but num_clients=5"),
    (["channel.kind=trace"], "channel.trace_file: must be set"),
    (["noequals"], "expected key=value"),
])
def test_validation_errors_name_the_key_and_allowed_values(overrides, fragment):
    with pytest.raises(ScenarioError) as err:
        load_scenario("epsl-resnet18", overrides)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_device_classes_are_validated():
    with pytest.raises(ScenarioError, match=r"devices.classes\[0\].compute_flops"):
        build_scenario({"num_clients": 1, "num_subchannels": 2,
                        "devices": {"kind": "classes", "classes": [{"count": 1, "compute_flops": -1}]}})
    with pytest.raises(ScenarioError, match=r"devices.classes\[0\].speed: unknown key"):
        build_scenario({"num_clients": 1, "num_subchannels": 2,
                        "devices": {"kind": "classes", "classes": [{"count": 1, "speed": 2}]}})


def test_unknown_scenario_and_bad_yaml(tmp_path):
    with pytest.raises(ScenarioError, match="neither a file nor a shipped scenario"):
        load_scenario("does-not-exist")
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_clients: [1,\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="expected a mapping"):
        load_scenario(listy)


@pytest.mark.parametrize("content, fragment", [
    (b"", "the file is empty"),
    (b"# only a comment\n", "the file is empty"),
    (b"num_clients: 3\nphi: 0.2\nnum_clients: 4\n", "key 'num_clients' is given twice (line 3)"),
    (b"channel:\n  correlation: 0.5\n  correlation: 0.7\n", "key 'correlation' is given twice"),
    (b"name: x\0\x01\x02", "not a text file"),
    (b"name: \xff\xfe", "not a UTF-8 text file"),
])
def test_bad_scenario_files_name_the_file_and_the_fault(tmp_path, content, fragment):
    path = tmp_path / "s.yaml"
    path.write_bytes(content)
    with pytest.raises(ScenarioError, match="^scenario ") as err:
        load_scenario(path)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_folder_or_a_huge_file_is_not_a_scenario(tmp_path):
    (tmp_path / "folder.yaml").mkdir()
    with pytest.raises(ScenarioError, match="is a folder, not a YAML file"):
        load_scenario(tmp_path / "folder.yaml")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ScenarioError, match="allowed: a YAML file of at most"):
        load_scenario(big)
    with pytest.raises(ScenarioError, match="is a folder; allowed: a .npz or .jsonl trace file"):
        load_scenario("small-exact", [f"channel.trace_file={tmp_path}"])


def test_an_alias_bomb_is_reported_in_a_few_hundred_characters(tmp_path):
    levels = ["&l0 [" + ", ".join(["lol"] * 9) + "]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 7)]  # 9^7 leaves if expanded
    path = tmp_path / "bomb.yaml"
    path.write_text(f"num_clients: [{', '.join(levels)}]\n")
    with pytest.raises(ScenarioError, match="num_clients: expected an integer") as err:
        load_scenario(path)
    assert len(str(err.value)) < 300


def test_overrides_given_as_one_string_or_bad_items():
    assert load_scenario("small-exact", "phi=0.3").phi == 0.3
    with pytest.raises(ScenarioError, match=r"^override 7: expected key=value$"):
        load_scenario("small-exact", [7])


def test_yaml_file_with_tags_is_rejected_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(evil)


def test_sfl_syncs_every_round_by_default():
    s = build_scenario({"scheme": "sfl", "phi": 0.0})
    assert s.effective_sync_period == 1
    assert build_scenario({"scheme": "psl", "phi": 0.0}).effective_sync_period == 0


def test_replace_revalidates():
    s = load_scenario("small-exact")
    assert s.replace(phi=0.25).phi == 0.25
    with pytest.raises(ScenarioError):
        s.replace(phi=2)


def test_docs_table_is_current():
    """docs/scenario.md embeds the generated key table; regenerate it when a key changes."""
    doc = open("docs/scenario.md").read()
    assert scenario_reference_markdown() in doc
