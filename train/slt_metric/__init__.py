"""The `slt_metric` evaluate module: `slt_metric.py` is loaded by path with `evaluate.load`.

This folder is a package only so that setuptools ships the metric file with `train`.
"""
