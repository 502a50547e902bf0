"""Evaluation: amodal AP/AR by occlusion level, pairwise depth order, and the layered ground-truth oracle.

``predictions`` holds what is scored (files of predictions are read by :mod:`converters.results`); ``groundtruth`` picks the scored annotation and derives occlusion
rates; ``segmentation``, ``order`` and ``oracle`` compute the three evaluations; ``report`` prints and saves.
"""

from .oracle import OracleResult, evaluate_oracle, layer_predictions
from .order import OrderResult, PairScore, evaluate_order
from .predictions import Prediction, PredictionSet
from .segmentation import Bucket, SegmentationResult, default_buckets, evaluate_segmentation

__all__ = ["Bucket", "OracleResult", "OrderResult", "PairScore", "Prediction", "PredictionSet",
           "SegmentationResult", "default_buckets", "evaluate_oracle", "evaluate_order", "evaluate_segmentation",
           "layer_predictions"]
