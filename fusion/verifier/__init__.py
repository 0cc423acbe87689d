"""The audio-noun verifier: which caption words are audible nouns, and what the sound says about them.

* :class:`NounTable` - the committed audible-noun table (``data_prep/audible_nouns.json``).
* :class:`AudioNounVerifier` - per-clip evidence (zero-shot SoundNet posteriors + learned,
  calibrated per-noun classifiers); ``None`` when the clip has no audio; a
  :class:`VerifiedEvidence` that says where the verifier abstains (out of its training
  distribution, or learned and zero-shot evidence disagree).
* :func:`train_verifier` - fit the learned part on paired data
  (``python -m fusion.verifier train --manifest M --features STORE --out FILE``).
* :func:`explain` / :func:`format_explanation` - ``fusion caption --explain``.

The beam-search scorer ``"audio"`` and the n-best re-ranker live in
``fusion/decoding/audio_scorer.py``.
"""

from fusion.verifier.classifier import NounClassifier, fit_classifier, pool_audio
from fusion.verifier.core import DEFAULT_CLIP, AudioNounVerifier, Evidence, VerifiedEvidence
from fusion.verifier.explain import explain, format_explanation, noun_evidence
from fusion.verifier.table import NounEntry, NounTable, default_table
from fusion.verifier.training import caption_labels, train_verifier

__all__ = [
    "DEFAULT_CLIP",
    "AudioNounVerifier",
    "Evidence",
    "NounClassifier",
    "NounEntry",
    "NounTable",
    "caption_labels",
    "default_table",
    "explain",
    "fit_classifier",
    "format_explanation",
    "noun_evidence",
    "pool_audio",
    "train_verifier",
    "VerifiedEvidence",
]
