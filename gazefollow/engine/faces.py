"""A drawn face for generated datasets of any task: a head seen by an orthographic camera,
a skin-coloured disc with hair on top, eyes, nose and mouth placed on the head's sphere and
turned with the head pose, and pupils turned further by the eye-in-head rotation. Subjects
differ in skin, hair, eye size and face shape."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


SUPERSAMPLE = 3  # drawn at 3x and scaled down, for smooth edges


def rotation(pitch: float, yaw: float) -> np.ndarray:
    """The rotation that turns "straight at the camera" (0, 0, -1) into the direction of
    (pitch, yaw) in the project's convention: Ry(yaw) @ Rx(-pitch)."""
    cp, sp, cy, sy = math.cos(-pitch), math.sin(-pitch), math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return ry @ rx


def _surface(a: float, b: float) -> np.ndarray:
    """A point of the unit head sphere's front, ``a`` right and ``b`` down of its centre."""
    return np.array([a, b, -math.sqrt(max(0.0, 1 - a * a - b * b))])


@dataclass(frozen=True)
class Subject:
    skin: tuple
    hair: tuple
    eye_radius: float  # of the head radius
    eye_spread: float
    mouth_width: float
    background: tuple


def make_subject(rng: np.random.Generator) -> Subject:
    return Subject(skin=tuple(int(c) for c in np.array([225, 180, 150]) * rng.uniform(0.5, 1.05)),
                   hair=tuple(int(c) for c in rng.uniform(10, 90, 3)),
                   eye_radius=rng.uniform(0.15, 0.19), eye_spread=rng.uniform(0.3, 0.4),
                   mouth_width=rng.uniform(0.2, 0.3),
                   background=tuple(int(c) for c in rng.uniform(40, 220, 3)))


def render_face(subject: Subject, size: int, head: tuple, eyes: tuple) -> tuple:
    """(RGB uint8 [size, size, 3], the gaze as a unit vector (x right, y down, z away from
    the camera), landmarks [6, 2] in pixels) of one face with head pose ``head`` and
    eye-in-head rotation ``eyes`` (both (pitch, yaw))."""
    big = size * SUPERSAMPLE
    centre, radius = big / 2, 0.42 * big
    image = Image.new("RGB", (big, big), subject.background)
    draw = ImageDraw.Draw(image)
    turn = rotation(*head)

    def project(point: np.ndarray) -> tuple[float, float]:
        x, y, _ = turn @ point
        return centre + radius * x, centre + radius * y

    draw.ellipse((centre - radius, centre - radius, centre + radius, centre + radius),
                 fill=subject.skin)
    arc = np.linspace(-1.4, 1.4, 24)  # the top of the head's outline, then the hairline
    hair = [project(np.array([math.sin(t), -math.cos(t), 0.0])) for t in arc]
    hair += [project(_surface(0.85 * math.sin(t), -0.5 - 0.3 * math.cos(t))) for t in arc[::-1]]
    draw.polygon(hair, fill=subject.hair)
    gaze = turn @ rotation(*eyes) @ np.array([0.0, 0.0, -1.0])
    landmarks = []
    for side in (-1, 1):
        socket = _surface(side * subject.eye_spread, -0.12)
        ex, ey = project(socket)
        r = subject.eye_radius * radius
        draw.ellipse((ex - r, ey - 0.6 * r, ex + r, ey + 0.6 * r), fill=(245, 245, 240))
        # the pupil sits on the eyeball (radius r, centred behind the socket) along the gaze
        px, py = ex + 0.9 * r * gaze[0], ey + 0.9 * r * gaze[1]
        pr = 0.4 * r
        draw.ellipse((px - pr, py - pr, px + pr, py + pr), fill=(25, 20, 20))
        for corner in (-1, 1):
            landmarks.append(project(_surface(side * subject.eye_spread + corner *
                                              subject.eye_radius, -0.12)))
    nx, ny = project(_surface(0.0, 0.12))
    draw.ellipse((nx - 0.07 * radius, ny - 0.05 * radius, nx + 0.07 * radius,
                  ny + 0.05 * radius), fill=tuple(int(c * 0.8) for c in subject.skin))
    mouth = [project(_surface(side * subject.mouth_width, 0.45)) for side in (-1, 1)]
    draw.line(mouth, fill=(140, 50, 50), width=max(1, SUPERSAMPLE * 2))
    landmarks += mouth
    face = np.asarray(image.resize((size, size), Image.LANCZOS))
    return face, gaze, np.asarray(landmarks, dtype=np.float64) / SUPERSAMPLE
