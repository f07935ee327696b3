"""Training: recipes, run folders, the segmentation loop and classifier cross-validation.

Nothing at inference imports from here (import-linter keeps it so).
"""
