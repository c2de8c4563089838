"""The angular error and the gaze conventions of gaze estimation."""
import math

import numpy as np
import pytest

from gazefollow.estimation.conventions import (from_columbia, from_ethxgaze, from_gaze360,
                                               from_mpiifacegaze)
from gazefollow.estimation.metrics import (angular_error, mean_gaze_error, pitchyaw_to_vector,
                                           vector_to_pitchyaw)


def _slow_angular_error(a, b):
    """The textbook formula, one pair at a time."""
    out = []
    for u, v in zip(a, b):
        dot = sum(x * y for x, y in zip(u, v))
        norms = math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v))
        out.append(math.degrees(math.acos(max(-1.0, min(1.0, dot / norms)))))
    return out


def test_the_convention_by_hand():
    # straight into the camera; looking up; looking towards the camera's left (x < 0)
    assert pitchyaw_to_vector([[0, 0]])[0] == pytest.approx([0, 0, -1])
    up = pitchyaw_to_vector([[math.radians(30), 0]])[0]
    assert up == pytest.approx([0, -0.5, -math.sqrt(3) / 2])  # y points down
    left = pitchyaw_to_vector([[0, math.radians(90)]])[0]
    assert left == pytest.approx([-1, 0, 0], abs=1e-12)
    rng = np.random.default_rng(0)
    angles = rng.uniform([-1.2, -3.0], [1.2, 3.0], size=(50, 2))
    assert vector_to_pitchyaw(pitchyaw_to_vector(angles)) == pytest.approx(angles)
    assert vector_to_pitchyaw(3 * pitchyaw_to_vector(angles)) == pytest.approx(angles)
    with pytest.raises(ValueError, match="length 0 .*row 1"):
        vector_to_pitchyaw([[0, 0, -1], [0, 0, 0]])


def test_angular_error_matches_the_slow_reference():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 3)), rng.normal(size=(200, 3))
    b[0] = 2 * a[0]  # the same direction: 0 degrees, however long
    b[1] = -a[1]  # opposite: 180 (clipped, never NaN)
    got = angular_error(a, b)
    assert got == pytest.approx(_slow_angular_error(a.tolist(), b.tolist()), abs=1e-9)
    assert got[0] == pytest.approx(0, abs=1e-5) and got[1] == pytest.approx(180)
    # pitch/yaw and vectors mix: 30 degrees of pitch apart
    assert angular_error([[math.radians(30), 0]], [[0, 0, -1]]) == pytest.approx([30])
    with pytest.raises(ValueError, match="NaN/Inf in row 1"):
        angular_error([[0, 0], [np.nan, 0]], [[0, 0], [0, 0]])
    with pytest.raises(ValueError, match="got shape"):
        angular_error(np.zeros((3, 4)), np.zeros((3, 4)))


def test_the_mean_gaze_baseline():
    train = [[0.0, 0.2], [0.0, -0.2]]  # the mean direction is straight ahead
    assert mean_gaze_error(train, [[math.radians(10), 0.0]]) == pytest.approx([10])


def test_each_datasets_labels_by_hand():
    assert from_ethxgaze([[0.1, -0.3]])[0] == pytest.approx([0.1, -0.3])
    assert from_mpiifacegaze([[0.1, -0.3]])[0] == pytest.approx([-0.1, 0.3])
    # Gaze360: at the camera is -z; up is +y; +x is towards the subject's left
    assert from_gaze360([[0, 0, -1]])[0] == pytest.approx([0, 0])
    up = from_gaze360([[0, 0.6, -0.8]])[0]
    assert up == pytest.approx([math.asin(0.6), 0])
    sideways = from_gaze360([[0.6, 0, -0.8]])[0]
    assert sideways == pytest.approx([0, math.atan2(0.6, 0.8)])  # its own 2D target's yaw
    assert pitchyaw_to_vector([sideways])[0] == pytest.approx([-0.6, 0, -0.8])
    # ColumbiaGaze 0001_2m_0P_10V_-5H.jpg: 10 degrees up, 5 degrees horizontally
    assert from_columbia([10], [-5])[0] == pytest.approx([math.radians(10), math.radians(-5)])
    up = pitchyaw_to_vector(from_columbia([10], [0]))[0]
    assert up == pytest.approx([0, -math.sin(math.radians(10)), -math.cos(math.radians(10))])
