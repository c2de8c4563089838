"""The synthetic face world (``data.source_dataset: synthetic_faces``), written in the
normalized MPIIFaceGaze ``pXX.mat`` layout so that the real reader serves it.

Each face is a head seen by an orthographic camera: a skin-coloured disc with hair on top,
eyes, nose and mouth placed on the head's sphere and turned with the head pose, and pupils
turned further by the eye-in-head rotation. The gaze label is the direction of the eyes:
head rotation times eye rotation applied to "straight at the camera". The pupils alone show
the eye-in-head rotation and the features alone show the head pose; only the two together
give the gaze. Subjects differ in skin, hair, eye size and face shape. Everything is a
function of (seed, subject, sample), so a world is reproducible face by face.

Labels are written as MPIIFaceGaze stores them (both angles the other way than the project's
convention, ``conventions.from_mpiifacegaze``), head pose likewise, and six landmarks (the four
eye corners, the two mouth corners) in face pixels.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from gazefollow.engine.faces import make_subject, render_face
from gazefollow.engine.worlds import MANIFEST, ensure_world, write_world_atomically
from gazefollow.estimation.metrics import vector_to_pitchyaw


@dataclass
class SyntheticFacesConfig:
    """The generated face world of gaze estimation, written as normalized MPIIFaceGaze (the
    config section ``synthetic_faces``)."""

    subjects: int = 15  # p00 .. p14, as MPIIFaceGaze
    per_subject: int = 200
    size: int = 112  # face pixels: the GazeNet recipe's input (the release has 448)
    seed: int = 0
    head_pitch: float = 0.35  # radians, uniform in +-
    head_yaw: float = 0.6
    eye_pitch: float = 0.3
    eye_yaw: float = 0.45


FaceWorldConfig = SyntheticFacesConfig


def subject_faces(cfg: FaceWorldConfig, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(faces BGR uint8 [N, 3, S, S], labels [N, 16] as MPIIFaceGaze stores them) of one
    subject."""
    rng = np.random.default_rng([cfg.seed, index])
    subject = make_subject(rng)
    faces = np.zeros((cfg.per_subject, 3, cfg.size, cfg.size), np.uint8)
    labels = np.zeros((cfg.per_subject, 16))
    for k in range(cfg.per_subject):
        head = (rng.uniform(-cfg.head_pitch, cfg.head_pitch),
                rng.uniform(-cfg.head_yaw, cfg.head_yaw))
        eyes = (rng.uniform(-cfg.eye_pitch, cfg.eye_pitch),
                rng.uniform(-cfg.eye_yaw, cfg.eye_yaw))
        face, direction, landmarks = render_face(subject, cfg.size, head, eyes)
        gaze = vector_to_pitchyaw(direction[None])[0]
        faces[k] = face[:, :, ::-1].transpose(2, 0, 1)  # RGB -> BGR, channels first
        labels[k, 0:2] = -gaze  # MPIIFaceGaze's signs
        labels[k, 2:4] = -np.asarray(head)
        labels[k, 4:16] = landmarks.reshape(-1)
    return faces, labels


def write_face_world(cfg: FaceWorldConfig, root: str | Path, overwrite: bool = False,
                     log=print) -> Path:
    """``p00.mat`` .. under ``root``, atomically (``write_world_atomically``: a non-empty
    folder only with ``overwrite`` and only when it holds a world we wrote)."""
    def write(folder: Path) -> None:
        for index in range(cfg.subjects):
            faces, labels = subject_faces(cfg, index)
            with h5py.File(folder / f"p{index:02d}.mat", "w") as mat:
                # compressed: the same keys, shapes and dtypes to a reader, a tenth of the
                # disk. One face per chunk: h5py's own chunks span 50 faces, so reading one
                # face decompressed 50 (10 ms a face, most of a SimCLR step).
                mat.create_dataset("Data/data", data=faces, compression="gzip",
                                   compression_opts=1, chunks=(1, *faces.shape[1:]))
                mat.create_dataset("Data/label", data=labels)
        (folder / MANIFEST).write_text(json.dumps({"config": asdict(cfg),
                                                   "layout": "mpiifacegaze"}, indent=2))

    root = write_world_atomically(root, overwrite, write)
    log(f"synthetic face world written to {root}: {cfg.subjects} subjects x "
        f"{cfg.per_subject} faces of {cfg.size} px")
    return root


def ensure_face_world(cfg: FaceWorldConfig, root: str | Path, log=print) -> Path:
    """The face world under ``root``, written on first use; a folder written with other
    settings is refused (``engine.worlds.ensure_world``)."""
    return ensure_world(cfg, root, write_face_world, log=log)
