"""Cell classifiers at inference: a random forest on cells-table features or a CNN on cell crops,
loaded from a card + weights pair (training is in :mod:`blastseg.training`)."""
