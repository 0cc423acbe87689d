"""Video -> feature record, and the on-disk feature store (atomic, resumable, shardable).

Typical use::

    from fusion.features import ExtractConfig, FeatureStore, extract_to_store, collect_inputs
    summary = extract_to_store(collect_inputs(["videos/"]), "feats/", ExtractConfig())
    store = FeatureStore("feats/")
    record = store[store.ids()[0]]       # .frames (T, 1280) float32, .audio (A, 256) or None
"""

from fusion.features.config import RUNTIME_KEYS, ExtractConfig, ExtractSummary, FeatureRecord
from fusion.features.extractor import FeatureExtractor
from fusion.features.inputs import MEDIA_EXTENSIONS, collect_inputs, parse_shard, select_shard, shard_of
from fusion.features.runner import ensure_features, extract_job, extract_to_store
from fusion.features.store import FeatureStore, MissingRecordError, safe_id

__all__ = [
    "MEDIA_EXTENSIONS",
    "RUNTIME_KEYS",
    "ExtractConfig",
    "ExtractSummary",
    "FeatureExtractor",
    "FeatureRecord",
    "FeatureStore",
    "MissingRecordError",
    "collect_inputs",
    "ensure_features",
    "extract_job",
    "extract_to_store",
    "parse_shard",
    "safe_id",
    "select_shard",
    "shard_of",
]
