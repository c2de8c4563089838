"""Which subjects train, validate and test under each gaze-estimation protocol.

Validation, used for model selection, never holds the test subject: it is carved from the
training subjects.
"""
from __future__ import annotations

from dataclasses import dataclass

from gazefollow.estimation.data.mpiifacegaze import SUBJECTS as MPII_SUBJECTS


@dataclass(frozen=True)
class SubjectSplit:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


def leave_one_subject_out(subjects: tuple[str, ...], fold: int,
                          val_subjects: int = 1) -> SubjectSplit:
    """Fold k tests on subject k; validation is the ``val_subjects`` subjects after it (in
    order, wrapping), the rest train. ``val_subjects=0`` trains on all 14 others, as the
    published 15-fold protocol does, and then there is no validation split."""
    if not 0 <= fold < len(subjects):
        raise ValueError(f"eval.fold={fold}: the protocol has folds 0..{len(subjects) - 1}")
    if not 0 <= val_subjects < len(subjects) - 1:
        raise ValueError(f"{val_subjects} validation subjects leave none to train on")
    test = subjects[fold]
    val = tuple(subjects[(fold + 1 + k) % len(subjects)] for k in range(val_subjects))
    train = tuple(s for s in subjects if s != test and s not in val)
    return SubjectSplit(train, val, (test,))


def mpii_loso(fold: int, val_subjects: int = 1) -> SubjectSplit:
    """MPIIFaceGaze's 15-fold leave-one-subject-out protocol (p00 .. p14)."""
    return leave_one_subject_out(MPII_SUBJECTS, fold, val_subjects)


def mpii_unigaze_split(val_subjects: int = 0) -> SubjectSplit:
    """UniGaze's MPIIFaceGaze split: train p00-p09, test p10-p14, no validation (the last
    weights are tested). ``val_subjects`` > 0 holds the last ones of p00-p09 out of training
    for validation instead, so that model selection never sees p10-p14."""
    if not 0 <= val_subjects < 10:
        raise ValueError(f"{val_subjects} validation subjects leave none of p00-p09 to train on")
    train = MPII_SUBJECTS[:10]
    return SubjectSplit(train[:10 - val_subjects], train[10 - val_subjects:], MPII_SUBJECTS[10:])


def ethxgaze_validation(train_files: list[str], val_subjects: int = 5) -> SubjectSplit:
    """ETH-XGaze's test labels are hidden: validation is the last ``val_subjects`` of its
    ``train`` subjects (in file-name order), held out of training; there is no local test."""
    files = tuple(sorted(train_files))
    if not 0 < val_subjects < len(files):
        raise ValueError(f"{val_subjects} validation subjects of {len(files)} leave none to "
                         "train on")
    return SubjectSplit(files[:-val_subjects], files[-val_subjects:], ())


def hold_out_last(train: tuple[str, ...], val_subjects: int,
                  test: tuple[str, ...]) -> SubjectSplit:
    """A fold's training subjects with the last ``val_subjects`` of them held out for
    validation (the test subjects are never among them)."""
    if not 0 <= val_subjects < len(train):
        raise ValueError(f"{val_subjects} validation subjects of {len(train)} training ones "
                         "leave none to train on")
    cut = len(train) - val_subjects
    return SubjectSplit(train[:cut], train[cut:], test)
