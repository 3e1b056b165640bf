"""nbutils: the tested helper package behind the unsupervised brain MRI segmentation notebooks."""

__version__ = "0.1.0"
