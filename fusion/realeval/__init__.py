"""Measurement on the real development clips (issue 20, deliverable 5).

- :mod:`.metrics`: per-clip BLEU-4, METEOR, ROUGE-L, CIDEr (one fixed IDF for every system),
  noun precision and repeated words (:func:`score_clips`);
- :mod:`.stats`: paired bootstrap intervals (:func:`paired`) and leave-one-out choices
  (:func:`loo_select`);
- :mod:`.harness`: the clips with their cached features (:func:`load_devset`), the audio
  ablation and the side-by-side comparison of systems (:func:`compare_systems`).
"""

from fusion.realeval.harness import DevSet, ablation_summary, audio_ablation, caption_all, compare, compare_systems, load_devset
from fusion.realeval.metrics import ClipScores, NounLexicon, NounMatch, noun_match, score_clips
from fusion.realeval.stats import LooChoice, loo_select, paired

__all__ = [
    "ClipScores", "DevSet", "LooChoice", "ablation_summary", "NounLexicon", "NounMatch", "audio_ablation", "caption_all", "compare",
    "compare_systems", "load_devset", "loo_select", "noun_match", "paired", "score_clips",
]
