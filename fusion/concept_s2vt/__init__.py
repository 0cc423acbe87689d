"""The S2VT from text alone (issue 20, 3b): an S2VT whose inputs are concept evidence.

- :mod:`.synth`: noise pools measured on real clips (:func:`measure_pools`) and the
  :class:`Synthesizer` that draws a caption's input from them;
- :mod:`.model`: :func:`train_concept_s2vt`, :class:`ConceptInputs` (a real clip's input) and
  :class:`ConceptCaptionScorer` (the model as the beam search's ``"caption"`` scorer).

``python -m scripts.concept_s2vt`` trains it (cross-fitted over the development clips) and
captions the real clips.
"""
