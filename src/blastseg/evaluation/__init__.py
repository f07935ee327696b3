"""How good a result is: segmentation scores against masks, detection against boxes and
centroids, classification against labels."""
