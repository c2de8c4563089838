"""Face crops for a gaze estimator from a photo: the data normalisation of Zhang, Sugano and
Bulling, "Revisiting Data Normalization for Appearance-Based Gaze Estimation" (ETRA 2018), or
a plain square crop of the face box.

**Normalisation.** The head pose comes from the detector's five landmarks and a generic 3D
face (``FACE_MODEL``) through OpenCV's ``solvePnP`` (EPnP, then refined iteratively). A virtual
camera is turned to look at the face centre (the mean of the eyes and the mouth corners) with
its x axis in the plane of the head's x axis, and moved to a fixed distance; the picture is
warped to what that camera would see (``warpPerspective`` with ``W = K_n S R K^-1``). The
model's gaze is a direction in the virtual camera's frame: ``R^T`` turns it back into the
real camera's (the distance scaling ``S`` does not act on directions, as in the paper's
modified normalisation).

The camera's intrinsics are the user's when given; else the focal length is the picture's
longer side in pixels (a horizontal field of view of about 53 degrees for a landscape
picture, that of a typical webcam or phone camera) and the principal point its centre, with
no lens distortion.

**Crop.** The face box grown to a square around its centre (``CROP_SCALE`` x its longer
side), clamped by padding with black, resized to the model's face size; the gaze is read in
the camera's frame as it is. This is the input of a model trained on centred face crops
(the synthetic face world, Gaze360's and ColumbiaGaze's crops).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A generic adult face in millimetres, head coordinates (x to the person's left, which is the
# picture's right for a face turned to the camera; y down; z away from the camera), at the
# detector's five landmarks: rounded anthropometric averages (63 mm between the pupils, the
# nose tip 35 mm below and 20 mm in front of them, the mouth corners 50 mm apart, 68 mm below
# the eyes). A generic face misjudges a given person's head pose by a few degrees.
FACE_MODEL = np.array([[-31.5, 0.0, 0.0], [31.5, 0.0, 0.0], [0.0, 35.0, -20.0],
                       [-25.0, 68.0, -8.0], [25.0, 68.0, -8.0]])
CENTRE_POINTS = [0, 1, 3, 4]  # the face centre: the eyes and the mouth corners
CROP_SCALE = 1.0  # the plain crop: the face box's longer side


@dataclass(frozen=True)
class VirtualCamera:
    """The normalised camera of a training set: focal length (pixels), distance to the face
    centre (mm) and picture side (pixels)."""

    focal: float
    distance: float
    size: int


def default_camera(width: int, height: int) -> np.ndarray:
    """The stated default intrinsics of a picture (module docstring)."""
    focal = float(max(width, height))
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def head_pose(landmarks: np.ndarray, camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rotation [3, 3], translation [3] in mm) of the generic face that projects onto the
    five landmarks [5, 2] (pixels) through ``camera``."""
    import cv2

    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 1, 2)
    model = FACE_MODEL.reshape(5, 1, 3)
    no_distortion = np.zeros(4)
    ok, rvec, tvec = cv2.solvePnP(model, points, camera, no_distortion, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(model, points, camera, no_distortion, rvec, tvec, True,
                                      flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or not np.isfinite(tvec).all() or tvec[2, 0] <= 0:
        raise ValueError("the five landmarks fit no head pose in front of the camera")
    return cv2.Rodrigues(rvec)[0], tvec.reshape(3)


def normalising_rotation(centre: np.ndarray, head_rotation: np.ndarray) -> np.ndarray:
    """The rotation R [3, 3] (rows: the virtual camera's axes in the real camera's frame)
    that turns the camera to look at ``centre`` with its x axis in the plane of the head's."""
    forward = centre / np.linalg.norm(centre)
    down = np.cross(forward, head_rotation[:, 0])
    down /= np.linalg.norm(down)
    right = np.cross(down, forward)
    right /= np.linalg.norm(right)
    return np.stack([right, down, forward])


@dataclass
class NormalisedFace:
    face: np.ndarray  # the model's input, H x W x 3 uint8 RGB
    rotation: np.ndarray  # R: the real camera's frame -> the virtual camera's
    warp: np.ndarray  # W [3, 3]: the picture's pixels -> the face crop's
    head_rotation: np.ndarray | None  # the head pose in the real camera's frame (None: crop)


def normalise_face(rgb: np.ndarray, landmarks: np.ndarray, camera: np.ndarray,
                   virtual: VirtualCamera) -> NormalisedFace:
    """The normalised face crop of one person (module docstring)."""
    import cv2

    head_rotation, translation = head_pose(landmarks, camera)
    points = FACE_MODEL @ head_rotation.T + translation
    centre = points[CENTRE_POINTS].mean(axis=0)
    rotation = normalising_rotation(centre, head_rotation)
    scale = np.diag([1.0, 1.0, virtual.distance / np.linalg.norm(centre)])
    camera_n = np.array([[virtual.focal, 0.0, virtual.size / 2],
                         [0.0, virtual.focal, virtual.size / 2], [0.0, 0.0, 1.0]])
    warp = camera_n @ scale @ rotation @ np.linalg.inv(camera)
    face = cv2.warpPerspective(rgb, warp, (virtual.size, virtual.size))
    return NormalisedFace(face, rotation, warp, head_rotation)


def crop_face(rgb: np.ndarray, box: np.ndarray, size: int) -> NormalisedFace:
    """The plain square crop of a face box (xyxy pixels), as a NormalisedFace whose rotation
    is the identity (module docstring)."""
    import cv2

    x1, y1, x2, y2 = (float(v) for v in box)
    side = CROP_SCALE * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = cx - side / 2, cy - side / 2
    warp = np.array([[size / side, 0.0, -left * size / side],
                     [0.0, size / side, -top * size / side], [0.0, 0.0, 1.0]])
    face = cv2.warpAffine(rgb, warp[:2], (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)
    return NormalisedFace(face, np.eye(3), warp, None)


def to_camera(gaze_vector: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """A gaze direction [3] in the virtual camera's frame -> the real camera's (R^T g)."""
    return rotation.T @ np.asarray(gaze_vector, dtype=np.float64)


def warp_points(points: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Pixels of the picture [K, 2] -> pixels of the face crop [K, 2]."""
    homogeneous = np.c_[np.asarray(points, np.float64), np.ones(len(points))] @ warp.T
    return homogeneous[:, :2] / homogeneous[:, 2:]
