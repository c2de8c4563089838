"""Which predictor reads a trained model: the task's predictor class by the task stored with
the weights, for the scripts that take any task's weights (``scripts/export.py``,
``scripts/demo.py``). Apart from ``tasks.py`` so that training never imports the predictors."""
from __future__ import annotations

from gazefollow.config import ConfigError
from gazefollow.engine.export import task_of_weights
from gazefollow.estimation.predict import GazeEstimator
from gazefollow.estimation.task import ESTIMATION
from gazefollow.following.predict import GazePredictor
from gazefollow.following.task import FOLLOWING
from gazefollow.social.predict import LookingPredictor
from gazefollow.social.task import LAM

# run.task -> the class that predicts with its trained models on pictures and video
PREDICTORS = {FOLLOWING.name: GazePredictor, ESTIMATION.name: GazeEstimator,
              LAM.name: LookingPredictor}


def predictor_class(weights) -> type:
    """The predictor of the task whose model ``weights`` (a run, checkpoint, export or
    published model's file) holds."""
    task = task_of_weights(weights)
    if task not in PREDICTORS:
        raise ConfigError(f"{weights} holds a model of the '{task}' task, which predicts on "
                          f"nothing by itself (the predictors: {sorted(PREDICTORS)}); a SimCLR "
                          "run starts an estimator through run.init_weights")
    return PREDICTORS[task]
