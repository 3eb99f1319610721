"""Inference: sliding-window prediction with mirroring TTA and fold ensembles, export to the original geometry."""
