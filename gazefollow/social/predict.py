"""Looking-At-Me on a user's own video frames::

    from gazefollow.social.predict import LookingPredictor
    predictor = LookingPredictor.from_pretrained("outputs/<run>")  # or an export, a state.pt
    for index, frame, people in predictor.stream(frames):  # RGB arrays in time order
        people[0].track, people[0].probability  # the track id, P(looking at the camera)

Faces are found by the offline detector (or given per frame) and tracked through the video
by IoU (``engine/face_detector.IoUTracker``: a track is a person's run of consecutive frames).
Each face is cut at its box and resized to the model's face size, as ``lam.crops: frames``
cuts the training crops. A frame's window is its track's frames t-3 .. t+3
(``data.clip_length``), the ends repeating the track's first or last frame, as in training;
so a frame's answer comes ``clip_length // 2`` frames later (``stream`` yields frames in
order with that delay).

GazePose's landmark prior is made from the detector's five landmarks (nose, eyes, mouth
corners, the points GazePose reads from MediaPipe Pose; zeros where the detector gives none,
as GazePose's loader does for a frame without them). Its head-pose prior comes from a
head-pose network on each crop that this project does not have: such a model
(``lam.gazepose_head_prior``) is refused, naming the key.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from gazefollow.engine.export import load_pretrained, save_exported
from gazefollow.engine.face_detector import FaceDetector, IoUTracker, given_box
from gazefollow.engine.images import as_rgb_image, to_tensor
from gazefollow.engine.runtime import eval_device
from gazefollow.social.data.dataset import window
from gazefollow.social.data.priors import landmark_vector

# the detector's landmarks (right eye, left eye, nose, right / left mouth corner) in the order
# of GazePose's five MediaPipe points (nose, left eye, right eye, mouth left, mouth right)
MEDIAPIPE_ORDER = [2, 1, 0, 4, 3]


@dataclass
class Looking:
    """One face in one frame."""

    track: int  # the person's track id in this video
    box: tuple  # the face box, pixels xyxy
    probability: float  # of looking at the camera
    score: float | None  # the detector's (None: a given box)


def lam_registry():
    from gazefollow.engine.task import Registry
    from gazefollow.social.task import LAM
    return Registry({LAM.name: LAM})


def describe(config) -> list[str]:
    return [f"model: `{config.lam.model}`, windows of {config.data.clip_length} face crops of "
            f"{config.data.face_size} px -> P(looking at the camera)",
            "load with `LookingPredictor.from_pretrained` (gazefollow/social/predict.py)"]


def landmark_prior(landmarks, box) -> np.ndarray:
    """GazePose's 15-d landmark prior from the detector's five landmarks (pixels) in the face
    box's crop; zeros without landmarks."""
    if landmarks is None:
        return np.zeros(15)
    x1, y1, x2, y2 = box
    points = (np.asarray(landmarks, np.float64)[MEDIAPIPE_ORDER] - [x1, y1]) / [x2 - x1, y2 - y1]
    return landmark_vector(np.c_[points, np.zeros(5), np.ones(5)])


class LookingPredictor:
    """Trained Looking-At-Me weights ready to predict (see the module docstring)."""

    def __init__(self, model, config, device, weights: str = "ema",
                 detector: FaceDetector | None = None):
        if config.lam.model == "gazepose" and config.lam.gazepose_head_prior:
            raise ValueError("this GazePose model reads a head-pose prior per crop "
                             "(lam.gazepose_head_prior), made by a head-pose network that "
                             "gazefollow does not have; a model trained with "
                             "lam.gazepose_head_prior=false predicts on your videos")
        self.model, self.config, self.device = model.eval(), config, torch.device(device)
        self.weights, self.detector = weights, detector
        self.half = config.data.clip_length // 2

    @classmethod
    def from_pretrained(cls, path, device=None, ema: bool = True, overrides: list = (),
                        detector: FaceDetector | None = None):
        """A run directory, checkpoint directory, ``state.pt`` or exported folder of a
        Looking-At-Me run."""
        model, config, weights = load_pretrained(path, lam_registry(), ema, overrides)
        device = device or eval_device(config)
        return cls(model.to(device), config, device, weights, detector)

    def save_pretrained(self, directory, overwrite: bool = False, metrics: dict | None = None):
        return save_exported(self.model, self.config, directory, lam_registry(), self.weights,
                             overwrite, metrics, describe(self.config))

    def _faces(self, rgb: np.ndarray, boxes, name: str) -> list[tuple]:
        """(box xyxy, detector score or None, landmarks or None) of every face."""
        if boxes is None:
            self.detector = self.detector or FaceDetector()
            return [(face.xyxy, face.score, face.landmarks) for face in self.detector.detect(rgb)]
        height, width = rgb.shape[:2]
        return [(given_box(box, width, height, f"{name}, face {j}"), None, None)
                for j, box in enumerate(boxes)]

    def _crop(self, rgb: np.ndarray, box) -> torch.Tensor:
        size = self.config.data.face_size
        crop = Image.fromarray(rgb).crop(tuple(int(round(v)) for v in box))
        return to_tensor(crop.resize((size, size), Image.BILINEAR))

    @torch.no_grad()
    def _encode(self, rgb: np.ndarray, boxes: list) -> tuple:
        """Each face crop of a frame through the frame encoder, once: a crop falls in the
        windows of ``clip_length`` frames, and in eval mode its encoding does not depend on
        them. -> (features [N, F], maps [N, C, h, w])"""
        if not boxes:
            return [], []
        crops = torch.stack([self._crop(rgb, box) for box in boxes]).to(self.device)
        return self.model.base_model(crops)

    def stream(self, frames, face_boxes=None):
        """(frame index, the frame as an RGB array, [Looking, ...]) for every frame, in order,
        ``clip_length // 2`` frames behind the input. ``frames``: an iterable of images
        (arrays, PIL images or paths) in time order; ``face_boxes``: one list of pixel xyxy
        boxes per frame (None: detected)."""
        tracker, pending, history = IoUTracker(), deque(), {}
        for index, image in enumerate(frames):
            name = f"frame {index}"
            rgb = np.asarray(as_rgb_image(image, name))
            faces = self._faces(rgb, None if face_boxes is None else face_boxes[index], name)
            ids = tracker.assign([box for box, _, _ in faces])
            features, maps = self._encode(rgb, [box for box, _, _ in faces])
            for k, (track, (box, _, landmarks)) in enumerate(zip(ids, faces)):
                history.setdefault(track, []).append(
                    (index, (features[k], maps[k]), landmark_prior(landmarks, box)))
            pending.append((index, rgb, list(zip(ids, faces))))
            if len(pending) > self.half:
                yield self._finish(pending.popleft(), history)
        while pending:
            yield self._finish(pending.popleft(), history)

    def predict(self, frames, face_boxes=None) -> list[list[Looking]]:
        """Every frame's faces (``stream``, collected): one list per frame."""
        return [people for _, _, people in self.stream(frames, face_boxes)]

    @torch.no_grad()
    def _finish(self, entry, history: dict) -> tuple:
        index, rgb, faces = entry
        windows, key_maps, priors = [], [], []
        for track, _ in faces:
            observed = history[track]
            position = next(k for k, (frame, _, _) in enumerate(observed) if frame == index)
            positions, _ = window(_Track(len(observed)), position, self.config.data.clip_length)
            windows.append(torch.stack([observed[int(k)][1][0] for k in positions]))
            key_maps.append(observed[position][1][1])
            priors.append(observed[position][2])
        people = []
        if faces:
            batch = {"frame_features": torch.stack(windows), "key_maps": torch.stack(key_maps),
                     "landmarks": torch.tensor(np.stack(priors), dtype=torch.float32,
                                               device=self.device),
                     "head_pose": torch.full((len(faces), 3), float("nan"), device=self.device)}
            scores = torch.softmax(self.model(batch).float(), dim=1)[:, 1].cpu().numpy()
            people = [Looking(int(track), tuple(float(v) for v in box), float(p), score)
                      for (track, (box, score, _)), p in zip(faces, scores)]
        for track in list(history):  # the past half-window is all a later frame reads
            history[track] = [item for item in history[track] if item[0] >= index - self.half]
            if not history[track]:
                del history[track]
        return index, rgb, people


@dataclass
class _Track:
    """A track's length, as ``window`` reads it (``len(track.frames)``)."""

    length: int

    @property
    def frames(self) -> range:
        return range(self.length)
