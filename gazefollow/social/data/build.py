"""The Looking-At-Me splits: Ego4D's lists read into windows, with the priors the model uses.

Splits: ``train`` is Ego4D's ``split/train.list``; validation and test are its
``split/val.list`` (the challenge keeps the test labels; the published validation numbers
are on val)."""
from __future__ import annotations

from pathlib import Path

LABELLED = {"train": "train", "val": "val", "test": "val"}  # our split -> Ego4D's list


def dataset_root(config) -> Path:
    root = Path(config.data.dataset_dir)
    if config.data.source_dataset == "synthetic_lam":
        from gazefollow.social.data.synthetic_lam import ensure_lam_world
        ensure_lam_world(config.synthetic_lam, root, log=lambda *_: None)
    elif not root.is_dir():
        raise FileNotFoundError(f"data.dataset_dir={root} does not exist")
    return root


def read_priors_for(config, root: Path, split: str) -> dict:
    """The prior files the configured model and data options use."""
    from gazefollow.social.data.priors import read_prior
    lam = config.lam
    wanted = {"headpose": lam.model == "gazepose" and lam.gazepose_head_prior,
              "landmarks": lam.model == "gazepose" and lam.gazepose_landmark_prior,
              "quality": lam.temporal_dropout}
    return {kind: read_prior(root, split, kind) for kind, on in wanted.items() if on}


def build_challenge(config, root: Path, log=print):
    """The challenge's windows (every crop checked), or None without a challenge folder."""
    from gazefollow.social.data.dataset import LAMWindows
    from gazefollow.social.data.ego4d_lam import read_challenge
    folder = root / config.lam.challenge_dir
    if not folder.is_dir():
        log(f"no challenge crops at {folder}: no submission.json")
        return None
    tracks, report = read_challenge(folder, config.data.on_bad_input)
    dataset = LAMWindows(root, tracks, report, "challenge", config,
                         read_priors_for(config, root, "challenge"), challenge_dir=folder)
    log(f"challenge: {report.summary()}; {len(dataset)} windows")
    return dataset


def build_lam_datasets(config, splits=("train", "val", "test"), log=print) -> dict:
    """The windows of each split; with the evaluated split, the challenge's too (under
    "challenge", where its crops are present), so its crops are checked before training."""
    from gazefollow.social.data.dataset import LAMWindows
    from gazefollow.social.data.ego4d_lam import read_split
    root, out = dataset_root(config), {}
    for split in dict.fromkeys(splits):
        tracks, report = read_split(root, LABELLED[split], config.data.on_bad_input)
        dataset = LAMWindows(root, tracks, report, LABELLED[split], config,
                             read_priors_for(config, root, LABELLED[split]),
                             augment=split == "train" and config.data.augment,
                             seed=config.run.seed)
        positives = int(dataset.labels().sum())
        log(f"{split}: {report.summary()}; {len(dataset)} windows of {config.data.clip_length} "
            f"frames, {positives} looking ({positives / max(1, len(dataset)):.1%})")
        out[split] = dataset
    if config.eval.split in splits:
        challenge = build_challenge(config, root, log)
        if challenge is not None:
            out["challenge"] = challenge
    return out
