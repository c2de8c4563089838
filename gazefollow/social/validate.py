"""The Looking-At-Me task's own configuration checks (the engine's run first)."""
from __future__ import annotations

from gazefollow.config import Config
from gazefollow.config.validation import check as _check
from gazefollow.config.validation import check_layer_decay

LAM_SOURCES = ("ego4d_lam", "synthetic_lam")


def validate_lam(config: Config) -> None:
    """Windows, class weights and the model's widths."""
    check_layer_decay(config, layered=False)
    data, model = config.data, config.model
    _check(data.clip_length >= 1 and data.clip_length % 2 == 1, "data.clip_length must be odd "
           "(a window centred on its key frame)")
    for key in ("train_stride", "val_stride", "test_stride"):
        _check(getattr(data, key) >= 1, f"data.{key} must be >= 1")
    _check(len(config.loss.class_weights) == 2 and min(config.loss.class_weights) > 0,
           "loss.class_weights must be two weights > 0 (not looking, looking)")
    _check(model.lam_feature_dim >= 1 and model.lam_lstm_layers >= 1,
           "model.lam_feature_dim and model.lam_lstm_layers must be >= 1")
    if model.lam_model == "gazepose":
        _check(model.gazepose_dmodel % 4 == 0 and
               model.gazepose_dmodel % model.gazepose_heads == 0, "model.gazepose_dmodel must "
               "be a multiple of 4 and of model.gazepose_heads")
        _check(0 < model.gazepose_split <= 90 and 0 < model.gazepose_dsplit <= 4 and
               0 < model.gazepose_csplit <= 1, "model.gazepose_split must be in (0, 90], "
               "gazepose_dsplit in (0, 4], gazepose_csplit in (0, 1]")
