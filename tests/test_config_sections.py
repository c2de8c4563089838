"""Configuration by component: each task and component declares its own keys, the registry
assembles them into one schema, and configs stored before the keys moved (2026-12-04, in
tests/data) still load with every value where it now lives."""
import csv
import dataclasses
import json
import pickle
import shutil
from pathlib import Path

import pytest
import yaml

from gazefollow.config import ConfigError, assemble_schema, build_config, get_key, renamed_keys
from gazefollow.engine.task import Registry
from gazefollow.following.task import FOLLOWING
from gazefollow.tasks import REGISTRY
from gazefollow.tasks import build_config as build_full
from tests.conftest import ROOT

STORED = ROOT / "tests" / "data" / "stored_configs"
STORED_RUN = ROOT / "tests" / "data" / "stored_run_lam"


def _flat(tree: dict, prefix: str = "") -> dict:
    return {f"{prefix}{section}.{key}": value for section, values in tree.items()
            for key, value in values.items()}


@pytest.mark.parametrize("name", ["following", "estimation", "simclr", "lam"])
def test_a_config_stored_before_the_move_keeps_every_value(name):
    """Every key of a config stored by the version before (its task's keys under model,
    data and loss) lands, with its value, under today's name."""
    stored = yaml.safe_load((STORED / f"{name}.yaml").read_text())
    config = build_full(base=stored)
    renames = renamed_keys(type(config))
    moved = 0
    for old, value in _flat(stored).items():
        new = renames.get(old, old)
        moved += new != old
        assert get_key(config, new) == value, f"{old} -> {new}"
    assert moved >= 37  # the estimation, SimCLR and Looking-At-Me keys that moved
    assert config.run.task == name


def test_the_moved_keys_have_one_home_and_the_old_names_still_work():
    config = build_full(overrides=["model.lam_feature_dim=32", "data.val_subjects=3",
                                   "loss.simclr_tau=0.25", "model.estimator=resnet"])
    assert (config.lam.feature_dim, config.estimation.val_subjects, config.simclr.tau,
            config.estimation.estimator) == (32, 3, 0.25, "resnet")
    assert not hasattr(config.model, "lam_feature_dim") and not hasattr(config.data, "joint")
    with pytest.raises(ConfigError, match="unknown key 'lam.lam_feature_dim'"):
        build_full(overrides=["lam.lam_feature_dim=4"])
    with pytest.raises(ConfigError, match=r"lam.crops='face' is not one of \['faces'"):
        build_full(overrides=["data.lam_crops=face"])  # the choices moved with the key


def test_each_section_part_is_declared_next_to_its_code():
    """The model section is the engine's keys plus those of the task, its encoders, heads and
    the backbones, each from its own module; a key declared by two parts is refused."""
    parts = [part for part in type(build_full().model).PARTS  # not a test file's encoder
             if part.__module__.startswith("gazefollow.")]
    modules = {part.__module__ for part in parts}
    assert {"gazefollow.config.schema", "gazefollow.following.config",
            "gazefollow.following.encoders.resnet_pair", "gazefollow.following.encoders.original",
            "gazefollow.following.encoders.gazelle",
            "gazefollow.following.models.denoiser", "gazefollow.following.models.temporal",
            "gazefollow.backbones.resnet", "gazefollow.backbones.vit",
            "gazefollow.backbones.dinov2"} == modules
    for part in parts:
        assert len(dataclasses.fields(part)) <= 12, part  # small sections

    @dataclasses.dataclass
    class Clash:
        block: str = "basic"

    with pytest.raises(TypeError, match="model.block is declared by both"):
        assemble_schema((("model", parts[0]), *((("model", p) for p in parts[1:])),
                         ("model", Clash)))


def test_an_assembled_config_pickles_and_compares():
    config = build_full(overrides=["lam.feature_dim=8"])
    again = pickle.loads(pickle.dumps(config))
    assert again == config and type(again.model) is type(config.model)


def test_a_one_task_registry_loads_a_stored_config_of_another_registry():
    """GazePredictor and exports read with gaze following alone: another task's sections of
    a stored config are left out, the following keys are kept."""
    stored = yaml.safe_load((STORED / "following.yaml").read_text())
    only = Registry({FOLLOWING.name: FOLLOWING})
    config = only.build_config(base=stored)
    assert not hasattr(config, "lam") and not hasattr(config, "estimation")
    assert config.model.unet_inplanes == stored["model"]["unet_inplanes"]
    with pytest.raises(ConfigError, match="unknown key 'lam'"):
        only.build_config(overrides=["lam.model=gazepose"])  # a user's key is never dropped


def test_the_engine_schema_alone_knows_no_task():
    config = build_config()
    assert [f.name for f in dataclasses.fields(config)] == ["run", "data", "model", "optim",
                                                             "eval", "logging"]
    assert set(REGISTRY.schema.__dataclass_fields__) >= {"lam", "estimation", "simclr",
                                                         "diffusion", "sampling"}


def test_a_checkpoint_stored_before_the_move_evaluates_as_it_did(tmp_path):
    """A Looking-At-Me run saved by the version before (GazePose, frame crops, its own class
    weights and width) evaluates with today's code to the same predictions it wrote."""
    from main import main
    run = tmp_path / "run"
    shutil.copytree(STORED_RUN, run)
    result = main(["--eval_weights", str(run), f"data.dataset_dir={tmp_path / 'world'}",
                   "logging.wandb=disabled"])
    out = Path(result["info"]["output_dir"])
    config = yaml.safe_load((out / "eval_config.yaml").read_text())
    assert (config["lam"]["model"], config["lam"]["crops"], config["lam"]["feature_dim"],
            config["lam"]["class_weights"]) == ("gazepose", "frames", 16, [0.2, 0.8])
    with open(STORED_RUN / "pred.csv") as before, open(out / "pred.csv") as after:
        assert list(csv.reader(after)) == list(csv.reader(before))
    stored = json.loads((STORED_RUN / "metrics.json").read_text())
    assert result["model"] == stored["model"]
