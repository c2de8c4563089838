"""The data config of a gaze-estimation run -> train / val / test datasets, by protocol.

Which subjects go where (``protocols.py``; validation never holds a test subject):

- synthetic_faces, mpiifacegaze, mpiifacegaze_pickle with ``estimation.split_protocol: loso``: test
  subject ``eval.fold``, validation the ``estimation.val_subjects`` after it, train the rest;
- the same with ``unigaze``: test p10-p14, validation the last ``estimation.val_subjects`` of
  p00-p09, train the rest of p00-p09;
- ethxgaze: no test (hidden labels), validation the last ``estimation.val_subjects`` train
  subjects, train the rest;
- gaze360: ``test.txt``, ``validation.txt``, ``train.txt``;
- columbia: test fold ``eval.fold`` of 5, validation the last ``estimation.val_subjects`` of the
  others, train the rest;
- gazecapture: test ``test/``, validation the last ``estimation.val_subjects`` of ``train/``;
- eyediap: test the persons after 8, validation the last ``estimation.val_subjects`` of 1-8.
- joint: each dataset of the mix by its own protocol (``joint.py``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gazefollow.config import Config, ConfigError
from gazefollow.engine.samples import BadInput
from gazefollow.estimation import protocols
from gazefollow.estimation.augment import FaceAugmentSettings
from gazefollow.estimation.data.checks import check_faces
from gazefollow.estimation.data.columbia import FOLDS, ColumbiaGaze, columbia_folds, subjects_under
from gazefollow.estimation.data.dataset import FaceDataset
from gazefollow.estimation.data.ethxgaze import ETHXGaze, train_subjects
from gazefollow.estimation.data.gaze360 import Gaze360Frames
from gazefollow.estimation.data.joint import (JointFaceDataset, dataset_roots, entry_config,
                                              resolve_entries)
from gazefollow.estimation.data.mpiifacegaze import MPIIFaceGazeMat
from gazefollow.estimation.data.mpiifacegaze_pickle import MPIIFaceGazePickle
from gazefollow.estimation.data.synthetic_faces import ensure_face_world
from gazefollow.estimation.data.unigaze_folders import (EyediapH5, GazeCaptureH5, eyediap_split,
                                                        gazecapture_split)

SUBJECT_READERS = {"synthetic_faces": MPIIFaceGazeMat, "mpiifacegaze": MPIIFaceGazeMat,
                   "mpiifacegaze_pickle": MPIIFaceGazePickle, "ethxgaze": ETHXGaze,
                   "columbia": ColumbiaGaze, "gazecapture": GazeCaptureH5, "eyediap": EyediapH5}


def world_subjects(config: Config) -> tuple[str, ...]:
    """The subjects of an MPIIFaceGaze-layout source: p00-p14, or the face world's count."""
    if config.data.source_dataset == "synthetic_faces":
        return tuple(f"p{k:02d}" for k in range(config.synthetic_faces.subjects))
    return protocols.MPII_SUBJECTS


def fold_count(config: Config) -> int:
    """How many folds ``--all_folds`` runs (1 for a source with fixed splits)."""
    source = config.data.source_dataset
    if source in ("synthetic_faces", "mpiifacegaze", "mpiifacegaze_pickle"):
        return len(world_subjects(config)) if config.estimation.split_protocol == "loso" else 1
    if source == "columbia":
        return FOLDS
    return 1


def subject_split(config: Config, root: Path) -> protocols.SubjectSplit:
    """Train / val / test subjects of a per-subject source under the configured protocol."""
    source, estimation, fold = config.data.source_dataset, config.estimation, config.eval.fold
    try:
        if source == "ethxgaze":
            return protocols.ethxgaze_validation(train_subjects(root), estimation.val_subjects)
        if source == "gazecapture":
            return gazecapture_split(root, estimation.val_subjects)
        if source == "eyediap":
            return eyediap_split(root, estimation.val_subjects)
        if source == "columbia":
            train, test = columbia_folds(subjects_under(root), fold)
            return protocols.hold_out_last(tuple(train), estimation.val_subjects, tuple(test))
        if estimation.split_protocol == "unigaze":
            return protocols.mpii_unigaze_split(estimation.val_subjects)
        return protocols.leave_one_subject_out(world_subjects(config), fold,
                                               estimation.val_subjects)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(f"{source}: {err}") from None


def augment_settings(config: Config) -> FaceAugmentSettings | None:
    data, estimation = config.data, config.estimation
    if not data.augment:
        return None
    return FaceAugmentSettings(flip=data.augment_flip, crop=data.augment_crop,
                               crop_share=estimation.augment_crop_share,
                               color=data.augment_color, color_range=data.augment_color_range,
                               erase=estimation.augment_erase)


def face_readers(config: Config, splits, log=print) -> dict:
    """{split: reader} for the splits the protocol has (ETH-XGaze: no test; no validation
    with ``estimation.val_subjects: 0``)."""
    data = config.data
    root = Path(data.dataset_dir)
    if data.source_dataset == "synthetic_faces":
        ensure_face_world(config.synthetic_faces, root, log)
    elif not root.is_dir():
        raise FileNotFoundError(f"data.dataset_dir={root} does not exist")
    if data.source_dataset == "gaze360":
        readers = {split: Gaze360Frames(root, split, data.on_bad_input) for split in splits}
    else:
        chosen = subject_split(config, root)
        reader = SUBJECT_READERS[data.source_dataset]
        readers = {split: reader(root, list(getattr(chosen, split)), data.on_bad_input)
                   for split in splits if getattr(chosen, split)}
    for reader in readers.values():
        check_faces(reader, data.verify_images)
    return readers


def build_face_datasets(config: Config, splits=("train", "val", "test"), log=print) -> dict:
    """Datasets by split name; each reader's report is logged. A split the protocol lacks is
    absent; a split that should have samples but has none is an error."""
    if config.data.source_dataset == "joint":
        return build_joint_datasets(config, splits, log)
    readers = face_readers(config, splits, log)
    if "train" in readers and config.estimation.label_fraction < 1:
        keep_labelled_share(readers["train"], config.estimation.label_fraction, config.run.seed,
                            log)
    out = {}
    for split, reader in readers.items():
        log(f"{split}: {reader.report.summary()}")
        if len(reader) == 0:
            raise BadInput(f"the {split} split is empty after loading {reader.report.source}: "
                           f"{reader.report.summary()}")
        out[split] = FaceDataset(reader, config.data.face_size,
                                 augment_settings(config) if split == "train" else None,
                                 config.data.on_bad_input, config.run.seed)
    return out


def keep_labelled_share(reader, fraction: float, seed: int, log=print) -> None:
    """A label budget (``estimation.label_fraction``): a seeded share of the training faces stays,
    the rest is not used (said in the log and the load report's source)."""
    total = len(reader.rows)
    kept = max(1, round(fraction * total))
    chosen = np.random.default_rng([seed, 7]).choice(total, size=kept, replace=False)
    reader.rows = [reader.rows[i] for i in sorted(chosen)]
    reader.report.instances = len(reader.rows)
    reader.report.source += f" (label budget: {kept} of {total} faces)"
    log(f"train: estimation.label_fraction={fraction}: {kept} of {total} faces used")


def own_test_split(name: str) -> str:
    """The split a dataset is tested on: ETH-XGaze's labelled held-out subjects (its test
    labels are hidden), else its test split."""
    return "val" if name == "ethxgaze" else "test"


def build_joint_datasets(config: Config, splits, log=print) -> dict:
    """``data.source_dataset: joint`` (``joint.py``): train = the weighted mix of the
    ``estimation.joint`` entries' splits, val = their validation splits, the evaluated split = the
    ``estimation.joint_test`` entries (default: each training dataset's test split)."""
    roots, left_out = dataset_roots(config), config.estimation.joint_leave_out
    train = resolve_entries(config.estimation.joint, roots, "estimation.joint", "train")
    tests = resolve_entries(config.estimation.joint_test or [
        {**e, "split": own_test_split(e["name"])} for e in config.estimation.joint], roots,
        "estimation.joint_test", "test")
    if left_out:  # leave-one-dataset-out: train without it, test on it alone
        tests = [e for e in train if e["name"] == left_out][:1] or [
            e for e in tests if e["name"] == left_out][:1]
        tests = [{**e, "split": own_test_split(e["name"])} for e in tests]
        train = [e for e in train if e["name"] != left_out]
    wanted = {"train": [(e, e["split"]) for e in train],
              "val": [(e, "val") for e in train if e["split"] != "val"],
              "test": [(e, e["split"]) for e in tests]}
    out = {}
    for split in dict.fromkeys(s if s in ("train", "val") else "test" for s in splits):
        parts = []
        for entry, its_split in wanted[split]:
            sub = entry_config(config, entry)
            built = build_face_datasets(sub, splits=(its_split,), log=lambda *_: None)
            if its_split in built:
                parts.append((entry["name"], built[its_split]))
            elif split != "val":
                raise ConfigError(f"data.{'joint' if split == 'train' else 'joint_test'}: "
                                  f"{entry['name']} has no {its_split} split")
        if parts:
            weights = [e["weight"] for e, _ in wanted["train"]] if split == "train" else None
            out[split] = JointFaceDataset(parts, weights, config.estimation.epoch_samples
                                          if split == "train" else 0)
            log(f"{split}: {out[split].load_report.summary()}")
    return out
