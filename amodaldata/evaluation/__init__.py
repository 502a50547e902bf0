"""Evaluation: amodal AP/AR by occlusion level, pairwise depth order, and the layered ground-truth oracle."""

from .predictions import Prediction, PredictionSet, read_predictions
from .segmentation import Bucket, SegmentationResult, default_buckets, evaluate_segmentation

__all__ = ["Bucket", "Prediction", "PredictionSet", "SegmentationResult", "default_buckets",
           "evaluate_segmentation", "read_predictions"]
