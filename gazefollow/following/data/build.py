"""Turn the data config into train / val / test datasets."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gazefollow.config import Config
from gazefollow.engine.samples import BadInput, LoadReport
from gazefollow.following.data.augment import AugmentSettings
from gazefollow.following.data.dataset import ClipDataset, HeadDataset, TrackDataset
from gazefollow.following.data.gazefollow import read_annotations
from gazefollow.following.data.goo import GOO_LAYOUTS, read_goo
from gazefollow.following.data.instances import HeadInstance, check_images
from gazefollow.following.data.synthetic import TEST_FILE, TRAIN_FILE, ensure_world
from gazefollow.following.data.vat import read_vat


def image_group(instance: HeadInstance) -> str:
    return instance.path


def show_group(instance: HeadInstance) -> str:
    """VAT: ``images/<show>/<clip>/<frame>`` -> the show; neighbouring frames are near copies,
    so holding out single frames (or clips of a show) would leak into validation."""
    return str(Path(instance.path).parent.parent)


def split_by_image(instances: list[HeadInstance], val_fraction: float, seed: int,
                   group=image_group) -> tuple[list[HeadInstance], list[HeadInstance]]:
    """Hold out whole IMAGES (or other ``group``s; seeded), so no scene is in both train and
    validation."""
    keys = sorted({group(i) for i in instances})
    rng = np.random.default_rng(seed)
    n_val = int(round(len(keys) * val_fraction))
    if val_fraction > 0 and n_val == 0:
        kind = "shows" if group is show_group else "images"
        if len(keys) < 2:
            raise BadInput(f"the train split has {len(keys)} of its {kind}: validation holds "
                           f"out whole {kind} (data.val_fraction={val_fraction}), so at least "
                           "two are needed")
        n_val = 1  # a fraction too small for these few groups still holds one out
    val_keys = set(rng.permutation(keys)[:n_val].tolist())
    train = [i for i in instances if group(i) not in val_keys]
    val = [i for i in instances if group(i) in val_keys]
    return train, val


def subsample_heads(instances: list[HeadInstance], size: int, seed: int) -> list[HeadInstance]:
    """Quick validation: a seeded subsample of HEAD INSTANCES (all annotators of each kept)."""
    if size >= len(instances):
        return instances
    keep = np.sort(np.random.default_rng(seed).choice(len(instances), size, replace=False))
    return [instances[k] for k in keep]


def drop_annotator_outliers(instances: list[HeadInstance], quantile: float,
                            log=print) -> list[HeadInstance]:
    """The original research code's ``--gaze_point_threshold``: every test annotator point's
    distance from its head's mean point is measured, and points farther than the
    ``quantile``-th of all those distances (sorted, index int(n * quantile)) are dropped; a
    head left without points is dropped, as there."""
    distances = [np.linalg.norm(i.gaze_points - i.gaze_points.mean(axis=0), axis=1)
                 if len(i.gaze_points) else np.zeros(0) for i in instances]
    every = np.sort(np.concatenate(distances)) if distances else np.zeros(0)
    if not len(every):
        return instances
    limit = every[min(int(len(every) * quantile), len(every) - 1)]
    kept, points_dropped = [], 0
    for instance, distance in zip(instances, distances):
        keep = distance <= limit
        points_dropped += int((~keep).sum())
        instance.gaze_points = instance.gaze_points[keep]
        if len(instance.gaze_points):
            kept.append(instance)
    log(f"test split: data.annotator_quantile={quantile} (--gaze_point_threshold) dropped "
        f"{points_dropped} annotator points farther than {limit:.4f} from their head's mean "
        f"point, and {len(instances) - len(kept)} heads left without points")
    return kept


def dataset_root(config: Config, log=print) -> Path:
    """The dataset folder; the synthetic world is generated there on first use."""
    root = Path(config.data.dataset_dir)
    if config.data.source_dataset == "synthetic":
        ensure_world(config.synthetic, root, log)
    elif not root.is_dir():
        raise FileNotFoundError(f"data.dataset_dir={root} does not exist")
    return root


DEFAULT_ANNOTATIONS = {
    "synthetic": {"train": TRAIN_FILE, "test": TEST_FILE},
    "gazefollow": {"train": TRAIN_FILE, "test": TEST_FILE},
    "videoattentiontarget": {"train": "annotations/train", "test": "annotations/test"},
}
def goo_files(root: Path, split: str, data) -> tuple[Path, str]:
    """(annotation pickle, image folder) of a GOO split: the configured file (with
    ``data.image_dir``), else the first known layout found under ``root``."""
    configured = data.train_annotations if split == "train" else data.test_annotations
    if configured:
        return root / configured, data.image_dir
    for layout in GOO_LAYOUTS.values():
        pickle_file, image_dir = layout[split]
        if (root / pickle_file).is_file():
            return root / pickle_file, image_dir
    looked = ", ".join(f"{name}: {root / layout[split][0]}" for name, layout in GOO_LAYOUTS.items())
    raise FileNotFoundError(f"no GOO {split} annotations under {root} (looked for {looked}); "
                            f"set data.{split}_annotations (and data.image_dir) for another "
                            "layout, e.g. GOO-Real's pickles")


def read_split(config: Config, root: Path, split: str,
               log=print) -> tuple[list[HeadInstance], LoadReport]:
    """Head instances of the train or test annotation file of the configured dataset, every
    image checked (``data.verify_images``: decoded too), and the loading report (logged)."""
    data = config.data
    configured = data.train_annotations if split == "train" else data.test_annotations
    if data.source_dataset == "goo":  # a layout of its own: pickle and image folder per split
        instances, report = read_goo(*goo_files(root, split, data), data.on_bad_input)
        return _checked(instances, report, root, data, log)
    file = root / (configured or DEFAULT_ANNOTATIONS[data.source_dataset][split])
    if data.source_dataset == "videoattentiontarget":
        stride = data.frame_stride if split == "train" else 1  # the protocol scores every frame
        instances, report = read_vat(file, data.image_dir or "images", data.on_bad_input, stride)
    else:
        instances, report = read_annotations(file, split, data.on_bad_input)
    return _checked(instances, report, root, data, log)


def _checked(instances, report, root: Path, data, log) -> tuple[list[HeadInstance], LoadReport]:
    """Every image opened (decoded with ``data.verify_images``), the loading report logged."""
    instances = check_images(instances, root, report, decode=data.verify_images)
    log(report.summary())
    return instances, report


def augment_settings(config: Config) -> AugmentSettings | None:
    """The training augmentations from ``data.augment*`` (None when off)."""
    data = config.data
    if not data.augment:
        return None
    return AugmentSettings(
        box_jitter=data.augment_box_jitter,
        box_jitter_max=data.augment_box_jitter_max, crop=data.augment_crop,
        flip=data.augment_flip, color=data.augment_color, color_range=data.augment_color_range)


def build_datasets(config: Config, splits=("train", "val", "test"), log=print) -> dict:
    """Datasets by split name; loading reports are logged, nothing is dropped silently."""
    data = config.data
    root = dataset_root(config, log)
    kwargs = dict(input_size=data.input_size, output_size=data.output_size,
                  face_size=data.face_size, heatmap_sigma=data.heatmap_sigma,
                  head_enlarge=data.head_enlarge, on_bad_input=data.on_bad_input,
                  sigma_randint=data.sigma_randint, depth_suffix=data.depth_suffix,
                  scene_resize=data.scene_resize, head_inputs=data.head_inputs)
    out = {}
    def make_clips(root, instances, spacing=1, **more):
        return ClipDataset(root, instances, data.clip_length, spacing, **more)
    # clips of each split's own instances, in track order, for a temporal model; a model
    # with a state per track trains on clips and streams its tracks otherwise
    make = make_clips if config.model.temporal != "none" else HeadDataset
    stream = TrackDataset if config.model.temporal == "chong" else make
    if {"train", "val"} & set(splits):
        instances, report = read_split(config, root, "train", log)
        if data.train_in_frame_only:
            kept = [i for i in instances if i.inout]
            log(f"train split: data.train_in_frame_only kept the {len(kept)} in-frame people of "
                f"{len(instances)} ({len(instances) - len(kept)} out of frame left out)")
            instances = kept
        group = show_group if data.source_dataset == "videoattentiontarget" else image_group
        train, val = split_by_image(instances, data.val_fraction, config.run.seed, group)
        out["train"] = make(root, train, augment=augment_settings(config),
                            random_sigma=config.diffusion.random_sigma,
                            seed=config.run.seed, load_report=report, **kwargs)
        out["val"] = stream(root, val, load_report=report, **kwargs)
    if "test" in splits:
        instances, report = read_split(config, root, "test", log)
        dropped_points, emptied = 0, 0
        for inst in instances:  # points below the threshold are padding, not annotations
            keep = (inst.gaze_points >= data.padding_threshold).all(axis=1)
            dropped_points += int((~keep).sum())
            emptied += int(keep.sum() == 0 and len(keep) > 0)
            inst.gaze_points = inst.gaze_points[keep]
        if dropped_points:
            log(f"test split: {dropped_points} annotator points below data.padding_threshold="
                f"{data.padding_threshold} ignored; {emptied} heads left with none "
                "(left out of the spatial metrics)")
        if data.annotator_quantile:
            instances = drop_annotator_outliers(instances, data.annotator_quantile, log)
        if data.subsample_test:
            instances = subsample_heads(instances, data.subsample_size, data.subsample_seed)
            log(f"test split SUBSAMPLED to {len(instances)} head instances "
                f"(seed {data.subsample_seed}): numbers are not comparable to the full test set")
        # test tracks keep every frame: a clip steps data.frame_stride frames, as in training
        test_spacing = {"spacing": data.frame_stride} if stream is make_clips else {}
        out["test"] = stream(root, instances, load_report=report, **test_spacing, **kwargs)
    out = {k: v for k, v in out.items() if k in splits}
    for split, dataset in out.items():
        if len(dataset) == 0:
            raise BadInput(f"the {split} split is empty after loading "
                           f"{dataset.load_report.source}: {dataset.load_report.summary()}")
    return out
