"""Data: loaders for the embedded default (MNI152, FLAIR phantom) and for real data on disk
(LGG ``kaggle_3m``, NIfTI, plain images), preprocessing, caching and torch datasets."""
