"""Adapters that put SynthToReal into other libraries' pipelines (albumentations, kornia, torchvision)."""
