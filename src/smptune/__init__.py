"""smptune: distributed, cross-validated hyperparameter tuning for segmentation models."""

__version__ = "0.1.0"
