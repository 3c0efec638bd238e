"""Task ``morphology``: galaxy morphology classification (LightningModule).

A thin :class:`~cosmobench.image_classification.ImageClassificationTask`: normalisation from
the datamodule's train-split statistics, cross-entropy on hard labels or vote fractions
(``data.label_type=soft``), SmoothGrad, calibration metrics and plots all come from there.

Models (``model.name``): every network registered with kind ``image_classifier``
(:mod:`cosmobench.nn`), with its declared settings: ``e2cnn`` (E(2)-equivariant CNN, group
``model.group``, invariant by group pooling, :mod:`cosmobench.nn.equivariant`), ``cnn`` (plain
CNN of comparable size, :mod:`cosmobench.nn.cnn`), ``resnet18`` (torchvision, random init,
:mod:`cosmobench.nn.resnet`).

Metrics always use the hard labels: accuracy (primary), balanced_accuracy, macro_f1, ece
(15 bins), nll and rotation_invariance_error (mean |p(Tx) - p(x)| over the 7 non-identity
rot90/flip transforms, classes and test images); with two classes also roc_auc and
average_precision. Definitions in :mod:`cosmobench.metrics.classification`.
"""
from __future__ import annotations

from cosmobench.image_classification import ImageClassificationTask


class MorphologyTask(ImageClassificationTask):
    """Galaxy morphology classifier (see the module docstring)."""

    invariance_metric = True
