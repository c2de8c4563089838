"""Gaze estimation on a user's own photos and video frames::

    from gazefollow.estimation.predict import GazeEstimator
    estimator = GazeEstimator.from_pretrained("outputs/<run>")  # or an export, a state.pt
    faces = estimator.estimate(["photo.jpg"])[0]  # faces found by the offline detector
    faces[0].pitchyaw, faces[0].gaze  # radians (the model's frame); a unit 3D vector

Each face's input is prepared as the model's training faces were (``normalise.py``): models
trained on normalised data (MPIIFaceGaze, ETH-XGaze, UniGaze's folders) read the face through
the data normalisation, which needs the detector's five landmarks; models trained on plain
crops (the synthetic face world, Gaze360, ColumbiaGaze) read the face box's square crop.
``gaze`` is the direction in the camera's coordinates (x right, y down, z away from the
camera), the normalisation's rotation undone. Labels follow the project's convention
(``estimation/conventions.py``); ``pitchyaw`` is in it too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from gazefollow.engine.export import load_pretrained, save_exported
from gazefollow.engine.face_detector import Face, FaceDetector, box_iou, given_box
from gazefollow.engine.images import as_rgb_image, to_tensor
from gazefollow.engine.runtime import eval_device
from gazefollow.engine.samples import BadInput
from gazefollow.estimation.metrics import pitchyaw_to_vector
from gazefollow.estimation.models import estimate
from gazefollow.estimation.normalise import (VirtualCamera, crop_face, default_camera,
                                             normalise_face, to_camera, warp_points)

ETH_XGAZE = VirtualCamera(focal=960.0, distance=600.0, size=224)
# the virtual camera of each training set of normalised faces (ETH-XGaze's and UniGaze's
# folders: the normalisation code's 960 px, 600 mm, 224 px; MPIIFaceGaze's released faces are
# 448 px: we take the same camera at that size); any other set is read as plain crops
VIRTUAL_CAMERAS = {"ethxgaze": ETH_XGAZE, "gazecapture": ETH_XGAZE, "eyediap": ETH_XGAZE,
                   "joint": ETH_XGAZE,
                   "mpiifacegaze": VirtualCamera(960.0, 600.0, 448),
                   "mpiifacegaze_pickle": VirtualCamera(960.0, 600.0, 448)}
EYE_CORNER_SHARE = 0.24  # an eye's corners: its centre -+ this share of the eye-to-eye vector
MATCH_IOU = 0.3  # a given face box takes the landmarks of the detected face it overlaps most


@dataclass
class FaceGaze:
    """One face's estimate (pixels of the picture; angles in radians)."""

    box: tuple  # the face box, xyxy
    pitchyaw: tuple  # the model's output: pitch, yaw in its frame (the virtual camera's)
    gaze: tuple  # the unit gaze direction in the camera's coordinates
    landmarks: list | None  # the detector's five landmarks [[x, y], ...] (None: none)
    confidence: float | None  # the detector's score (None: a given box without a match)
    source: str  # "detected" | "given"
    head_rotation: list | None = None  # the head pose (3 x 3) when the face was normalised
    face: np.ndarray | None = None  # the model's input picture (``keep_faces=True``)


def six_landmarks(five: np.ndarray) -> np.ndarray:
    """The detector's five landmarks -> MPIIFaceGaze's six (four eye corners, then the mouth
    corners, in picture order) for a model that crops the eyes (GEFF): each eye's corners at
    its centre -+ ``EYE_CORNER_SHARE`` of the eye-to-eye vector."""
    right, left, _, mouth_right, mouth_left = np.asarray(five, dtype=np.float64)
    step = EYE_CORNER_SHARE * (left - right)
    return np.stack([right - step, right + step, left - step, left + step, mouth_right,
                     mouth_left])


def estimation_registry():
    from gazefollow.engine.task import Registry
    from gazefollow.estimation.task import ESTIMATION
    return Registry({ESTIMATION.name: ESTIMATION})


def describe(config) -> list[str]:
    return [f"model: `{config.estimation.estimator}` estimator, {config.data.face_size} px "
            "faces -> pitch, yaw",
            "load with `GazeEstimator.from_pretrained` (gazefollow/estimation/predict.py)"]


class GazeEstimator:
    """Trained gaze-estimation weights ready to estimate (see the module docstring).
    ``normalisation``: "auto" (from the training set, ``VIRTUAL_CAMERAS``), "crop", a
    training set's name in ``VIRTUAL_CAMERAS`` (e.g. "ethxgaze"), or a ``VirtualCamera``."""

    def __init__(self, model, config, device, weights: str = "ema", normalisation="auto",
                 detector: FaceDetector | None = None):
        self.model, self.config, self.device = model.eval(), config, torch.device(device)
        self.weights, self.detector = weights, detector
        if normalisation == "auto":
            normalisation = VIRTUAL_CAMERAS.get(config.data.source_dataset, "crop")
        elif isinstance(normalisation, str) and normalisation in VIRTUAL_CAMERAS:
            normalisation = VIRTUAL_CAMERAS[normalisation]  # a training set's, by its name
        if normalisation != "crop" and not isinstance(normalisation, VirtualCamera):
            raise ValueError(f"normalisation is 'auto', 'crop', one of "
                             f"{sorted(VIRTUAL_CAMERAS)} or a VirtualCamera, got "
                             f"{normalisation!r}")
        self.normalisation = normalisation

    @classmethod
    def from_pretrained(cls, path, device=None, ema: bool = True, overrides: list = (),
                        normalisation="auto", detector: FaceDetector | None = None):
        """A run directory, checkpoint directory, ``state.pt`` or exported folder of a gaze
        estimation run."""
        model, config, weights = load_pretrained(path, estimation_registry(), ema, overrides)
        device = device or eval_device(config)
        return cls(model.to(device), config, device, weights, normalisation, detector)

    def save_pretrained(self, directory, overwrite: bool = False, metrics: dict | None = None):
        """An export (``engine/export.py``) that ``from_pretrained`` reads."""
        return save_exported(self.model, self.config, directory, estimation_registry(),
                             self.weights, overwrite, metrics, describe(self.config))

    def _detector(self) -> FaceDetector:
        self.detector = self.detector or FaceDetector()
        return self.detector

    def _faces(self, rgb: np.ndarray, boxes, name: str, landmarks=None) -> list[tuple]:
        """(face, source) of every face: detected, or given (clamped to the picture; refused
        when nothing of it is inside) with ``landmarks`` when given, else, when the
        normalisation needs them, with those of the detected face that overlaps it most."""
        if boxes is None:
            return [(face, "detected") for face in self._detector().detect(rgb)]
        height, width = rgb.shape[:2]
        needs_landmarks = self.normalisation != "crop" or self._uses_landmarks()
        found = self._detector().detect(rgb) \
            if landmarks is None and needs_landmarks and len(boxes) else []
        out = []
        for j, box in enumerate(boxes):
            x1, y1, x2, y2 = given_box(box, width, height, f"{name}, face {j}")
            if landmarks is not None:
                out.append((Face((x1, y1, x2 - x1, y2 - y1), None,
                                 np.asarray(landmarks[j], np.float64)), "given"))
                continue
            match = max(found, key=lambda f: box_iou(f.xyxy, (x1, y1, x2, y2)), default=None)
            if match is not None and box_iou(match.xyxy, (x1, y1, x2, y2)) < MATCH_IOU:
                match = None
            out.append((Face((x1, y1, x2 - x1, y2 - y1), match.score if match else None,
                             match.landmarks if match else None), "given"))
        return out

    def _uses_landmarks(self) -> bool:
        return bool(getattr(self.model, "uses_landmarks", False))

    def _prepare(self, rgb: np.ndarray, face: Face, camera, name: str, j: int):
        """(the normalised face, the model's inputs for it)."""
        size = self.config.data.face_size
        if self.normalisation == "crop":
            prepared = crop_face(rgb, face.xyxy, size)
        elif face.landmarks is None:
            raise BadInput(
                f"{name}, face {j}: this model was trained on normalised faces "
                f"({self.config.data.source_dataset}), which needs the face's five landmarks: "
                f"the {self._detector().backend} detector gives none here (yuface does: "
                "CPython 3.10 / 3.11 x86_64), or give landmarks=...")
        else:
            try:
                prepared = normalise_face(rgb, face.landmarks, camera, self.normalisation)
            except ValueError as err:
                raise BadInput(f"{name}, face {j}: {err}") from None
        picture = Image.fromarray(prepared.face)
        crop_side = picture.size[0]
        if picture.size != (size, size):
            picture = picture.resize((size, size), Image.BILINEAR)
        eyes = torch.full((6, 2), float("nan"))
        if face.landmarks is not None:
            eyes = torch.from_numpy(warp_points(six_landmarks(face.landmarks), prepared.warp)
                                    / crop_side).float()
        return prepared, to_tensor(picture), eyes

    @torch.no_grad()
    def estimate(self, images, face_boxes=None, landmarks=None, cameras=None,
                 keep_faces: bool = False) -> list[list[FaceGaze]]:
        """One list of ``FaceGaze`` per image (PIL images, H x W x 3 RGB arrays or paths).
        ``face_boxes``: one list of pixel xyxy boxes per image (None: detected);
        ``landmarks``: one list of [5, 2] arrays per image beside the boxes (the detector's
        order, ``engine/face_detector.LANDMARKS``); ``cameras``: one 3 x 3 intrinsic matrix
        per image (None: ``normalise.default_camera``)."""
        inputs, where = [], []
        for i, image in enumerate(images):
            name = str(image) if not isinstance(image, (np.ndarray, Image.Image)) else \
                f"image {i}"
            rgb = np.asarray(as_rgb_image(image, name))
            camera = default_camera(rgb.shape[1], rgb.shape[0]) if cameras is None or \
                cameras[i] is None else np.asarray(cameras[i], dtype=np.float64)
            faces = self._faces(rgb, None if face_boxes is None else face_boxes[i], name,
                                None if landmarks is None else landmarks[i])
            for j, (face, source) in enumerate(faces):
                prepared, tensor, eyes = self._prepare(rgb, face, camera, name, j)
                inputs.append((tensor, eyes))
                where.append((i, face, source, prepared))
        out: list[list[FaceGaze]] = [[] for _ in images]
        chunk = self.config.eval.batch_size
        for start in range(0, len(inputs), chunk):
            part = inputs[start:start + chunk]
            batch = {"face": torch.stack([t for t, _ in part]).to(self.device),
                     "eye_landmarks": torch.stack([e for _, e in part]).to(self.device)}
            angles = estimate(self.model, batch).float().cpu().numpy()
            for (i, face, source, prepared), pitchyaw in zip(where[start:start + chunk], angles):
                out[i].append(_result(face, source, prepared, pitchyaw, keep_faces))
        return out


def _result(face: Face, source: str, prepared, pitchyaw: np.ndarray, keep: bool) -> FaceGaze:
    gaze = to_camera(pitchyaw_to_vector(pitchyaw[None])[0], prepared.rotation)
    return FaceGaze(
        box=tuple(float(v) for v in face.xyxy), pitchyaw=tuple(float(v) for v in pitchyaw),
        gaze=tuple(float(v) for v in gaze / np.linalg.norm(gaze)),
        landmarks=None if face.landmarks is None else np.round(face.landmarks, 2).tolist(),
        confidence=face.score, source=source,
        head_rotation=None if prepared.head_rotation is None else
        prepared.head_rotation.tolist(), face=prepared.face if keep else None)
