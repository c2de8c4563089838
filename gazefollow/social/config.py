"""Looking-At-Me's config section, ``lam``: the model (GazeLSTM or GazePose and their
widths), the windows cut from each track, the face crops, and the class weights. The frame
encoder's shape is the shared face ResNet's ``model`` keys (model.face_layers, ...), the
window length ``data.clip_length``."""
from __future__ import annotations

from dataclasses import dataclass, field

GAZEPOSE_KEYS = ("head_prior", "split", "landmark_prior", "dsplit", "csplit", "dmodel", "heads",
                 "encoder_layers", "decoder_layers", "feedforward")


@dataclass
class LAMConfig:
    model: str = "gazelstm"  # gazelstm (Gaze360's, Ego4D's baseline) | gazepose
    feature_dim: int = 256  # fc2's width, the LSTM's input and hidden size
    lstm_layers: int = 2
    gazepose_head_prior: bool = True  # |yaw|, |pitch|, |roll| queries (else learned ones)
    gazepose_split: float = 1.0  # degrees per head-pose bin
    gazepose_landmark_prior: bool = True  # landmark-cell queries (else learned ones)
    gazepose_dsplit: float = 0.1  # landmark grid step over [-2, 2]
    gazepose_csplit: float = 0.1  # landmark visibility bin
    gazepose_dmodel: int = 512
    gazepose_heads: int = 8
    gazepose_encoder_layers: int = 6
    gazepose_decoder_layers: int = 6
    gazepose_feedforward: int = 2048
    # key frames every train_stride-th / val_stride-th frame of a track (the challenge's
    # crops: test_stride), each a window of data.clip_length frames centred on it
    train_stride: int = 13
    val_stride: int = 13
    test_stride: int = 1
    crops: str = "faces"  # face crops from face_imgs/ (faces) or cut from video_imgs/ (frames)
    challenge_dir: str = "videos_challenge"  # under data.dataset_dir: the submission's input
    temporal_dropout: bool = False  # GazePose's Gaussian temporal dropout
    # cross-entropy weights (not looking, looking); Ego4D's; GazePose's [0.073, 0.927]
    class_weights: list[float] = field(default_factory=lambda: [0.136, 0.864])

    CHOICES = {"model": ("gazelstm", "gazepose"), "crops": ("faces", "frames")}
    # where gazefollow kept these keys before 2026-12-05
    RENAMED = {"model.lam_model": "model", "model.lam_feature_dim": "feature_dim",
               "model.lam_lstm_layers": "lstm_layers",
               **{f"model.gazepose_{key}": f"gazepose_{key}" for key in GAZEPOSE_KEYS},
               **{f"data.{key}": key for key in
                  ("train_stride", "val_stride", "test_stride", "temporal_dropout")},
               "data.lam_crops": "crops", "data.lam_challenge_dir": "challenge_dir",
               "loss.class_weights": "class_weights"}
