"""The concept-link table: caption words -> label-space classes (``data_prep/concept_links.json``).

Built by ``python -m data_prep.concept_links`` from the caption corpus
(:mod:`data_prep.caption_corpus`), WordNet 3.0 and the classes' own names; read by
:mod:`fusion.concepts`. Nothing in it is picked by hand for a clip: every link follows one of
the rules in :mod:`data_prep.concept_links.rules`, and the table records which.

Format (``fusion.concept_links/1``)::

    {"format", "wordnet": "3.0", "rules": {...}, "spaces": {space: {"size", "source", "names"}},
     "words": {lemma: {"pos": "n" | "v", "forms": [caption words], "count": corpus uses,
                       "links": {space: [class ids]}, "implied_by": [[noun, pmi], ...] (verbs only)}}}

Spaces: ``imagenet`` (1000 WordNet synsets, the frame CNN's and SoundNet's conv8 order),
``places2`` (401 scenes, SoundNet's conv8_2 order), ``audioset`` (521 classes, YAMNet's order).
"""

from data_prep.concept_links.builder import LinkBuilder, build_links, dump_links

__all__ = ["LinkBuilder", "build_links", "dump_links"]
