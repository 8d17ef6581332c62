"""Pulumi components and configuration for aks-image-classifier (see `__main__.py`)."""
