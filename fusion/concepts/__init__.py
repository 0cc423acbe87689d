"""Concepts: caption words linked to label-space classes, and the evidence a clip gives them.

* :class:`ConceptLinks` (``links.py``): the committed table ``data_prep/concept_links.json``
  (caption word -> (space, class) links, generated from WordNet and the classes' names).
* :func:`clip_posteriors` / :class:`ConceptEvidence` (``evidence.py``): a feature record's
  posteriors per (modality, label space), and per linked word the log-odds evidence they give.

The beam-search scorers over this evidence live in :mod:`fusion.decoding.concept_scorer`:
``"visual"`` (the visual-noun verifier: the frame CNN's ImageNet posteriors) and, for the
zero-shot captioner, ``"audio"`` (SoundNet ImageNet / Places2 and AudioSet posteriors of the sound).
"""

from fusion.concepts.evidence import AUDIO_SOURCES, VISUAL_SOURCES, ConceptEvidence, clip_posteriors
from fusion.concepts.links import ConceptLinks, default_links

__all__ = ["AUDIO_SOURCES", "VISUAL_SOURCES", "ConceptEvidence", "ConceptLinks", "clip_posteriors", "default_links"]
