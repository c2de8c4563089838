"""The Looking-At-Me task's own configuration checks (the engine's run first)."""
from __future__ import annotations

from gazefollow.config import Config
from gazefollow.config.validation import check as _check
from gazefollow.config.validation import check_layer_decay

LAM_SOURCES = ("ego4d_lam", "synthetic_lam")


def validate_lam(config: Config) -> None:
    """Windows, class weights and the model's widths."""
    check_layer_decay(config, layered=False)
    lam = config.lam
    _check(config.data.clip_length % 2 == 1, "data.clip_length must be odd (a window centred "
           "on its key frame)")
    for key in ("train_stride", "val_stride", "test_stride"):
        _check(getattr(lam, key) >= 1, f"lam.{key} must be >= 1")
    _check(len(lam.class_weights) == 2 and min(lam.class_weights) > 0,
           "lam.class_weights must be two weights > 0 (not looking, looking)")
    _check(lam.feature_dim >= 1 and lam.lstm_layers >= 1,
           "lam.feature_dim and lam.lstm_layers must be >= 1")
    if lam.model == "gazepose":
        _check(lam.gazepose_dmodel % 4 == 0 and
               lam.gazepose_dmodel % lam.gazepose_heads == 0, "lam.gazepose_dmodel must "
               "be a multiple of 4 and of lam.gazepose_heads")
        _check(0 < lam.gazepose_split <= 90 and 0 < lam.gazepose_dsplit <= 4 and
               0 < lam.gazepose_csplit <= 1, "lam.gazepose_split must be in (0, 90], "
               "gazepose_dsplit in (0, 4], gazepose_csplit in (0, 1]")
