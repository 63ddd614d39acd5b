"""Every closed set of values a setting takes, as the ``Literal`` types the sections annotate their fields with.

Code elsewhere that needs one of these lists derives it (``typing.get_args``) instead of restating it, or a
test pins the two together (``tests/unit/test_choices.py``): a value added here but not to the code that
acts on it would otherwise load fine and fail later, in a node.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "AttackKind",
    "ClipRule",
    "CompressionKind",
    "DatasetKind",
    "InitKind",
    "LayersKind",
    "LossKind",
    "MetricKind",
    "ModeKind",
    "ModelKind",
    "OptimizerKind",
    "OutsideKind",
    "PartitionKind",
    "PeersKind",
    "PrecisionKind",
    "RuleKind",
    "ScheduleKind",
    "SelfWeightKind",
    "VarianceTarget",
    "WeightsKind",
    "WireDtype",
]

WeightsKind = Literal["metropolis", "uniform", "max-degree"]
PartitionKind = Literal["iid", "dirichlet", "shards"]  # the shipped splits; [data] partition also takes a plug-in
DatasetKind = Literal["mnist1d", "digits", "mnist", "cifar10", "synthetic"]  # the shipped datasets; [data] dataset also takes a plug-in
InitKind = Literal["shared", "independent"]
OptimizerKind = Literal["sgd", "adam"]
WireDtype = Literal["float32", "float16", "bfloat16", "int8"]
PeersKind = Literal["all", "one-peer-exponential"]
ModeKind = Literal["sync", "async"]
PrecisionKind = Literal["fp32", "bf16", "fp16"]
RuleKind = Literal["dsgd", "variance", "median", "trimmed-mean", "krum", "multi-krum", "clipped-gossip", "balance"]
ScheduleKind = Literal["every", "periodic", "random", "window", "none"]
OutsideKind = Literal["none", "random"]
VarianceTarget = Literal["others", "self", "conservative"]
SelfWeightKind = Literal["beta", "mixing"]
LayersKind = Literal["weights", "all"]
CompressionKind = Literal["none", "topk"]
ClipRule = Literal["he", "second-largest"]
AttackKind = Literal["none", "sign-flip", "gaussian", "label-flip", "alie", "ipm", "dissensus", "silent"]
ModelKind = Literal["cnn", "cnn1d", "logreg", "mlp", "mlpbn", "vector"]
LossKind = Literal["cross-entropy", "mse"]
MetricKind = Literal["accuracy", "mse"]
