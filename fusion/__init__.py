"""fusion: multimodal video description."""

from __future__ import annotations

from typing import Any

__all__ = ["FeatureStore"]


def __getattr__(name: str) -> Any:
    """Lazy exports: ``from fusion import FeatureStore`` without importing torch up front."""
    if name == "FeatureStore":
        from fusion.features import FeatureStore

        return FeatureStore
    raise AttributeError(f"module 'fusion' has no attribute {name!r}")
