"""The audible-noun table of the audio-noun verifier, built from WordNet 3.0.

``python -m data_prep.audible_nouns --out data_prep/audible_nouns.json [--vocab FILE ...]``

For every noun of the vocabulary (MSVD train captions, MSR-VTT train captions' words seen
>= 10 times, :mod:`fusion.benchmark`'s words, any ``--vocab`` file) the table records whether it is audible (:data:`RULE`) and, for audible ones:
``objects``, SoundNet conv8 (ImageNet) classes under a primary sense or its part/member
meronyms (``dog`` covers every breed; ``train`` -> locomotive -> steam locomotive);
``places``, conv8_2 (Places2) scenes whose name contains the noun (``train`` ->
train_station), whose synonyms occur in the noun's gloss (``train``: "railway" ->
railroad_track) or whose gloss names it (``sea`` -> beach, coast); ``esc10``, the ESC-10
classes it names (benchmark synonyms, hyponyms: ``puppy`` -> Dog bark, specific direct
hypernyms: ``chicken`` -> Rooster). Other nouns keep only their surface forms, so the runtime
(:class:`fusion.verifier.table.NounTable`) maps plurals and labels captions without WordNet.

Modules: :mod:`.wordnet` (reading Debian's ``wordnet-base`` through nltk, noun lemmas and
senses), :mod:`.rules` (the anchors that make a noun audible), :mod:`.builder` (the table),
:mod:`.cli` (inputs and the command line). SoundNet's labels are read through
:mod:`fusion.encoders.labels`. The table is committed beside this package as
``data_prep/audible_nouns.json``.
"""

from data_prep.audible_nouns.builder import Sources, TableBuilder, build_table, dump_table
from data_prep.audible_nouns.cli import DEFAULT_OUT, load_sources, main, read_caption_words, read_vocab_file
from data_prep.audible_nouns.rules import AUDIBLE_ANCHORS, ESC10_ANCHORS, MUTE_ANCHORS, RULE, TABLE_FORMAT
from data_prep.audible_nouns.wordnet import (DEFAULT_WORDNET_DIR, LEXNAMES_MAN_PAGE, lexnames_from_man_page,
                                             noun_lemma, open_wordnet, primary_senses)

__all__ = ["AUDIBLE_ANCHORS", "DEFAULT_OUT", "DEFAULT_WORDNET_DIR", "ESC10_ANCHORS", "LEXNAMES_MAN_PAGE",
           "MUTE_ANCHORS", "RULE", "TABLE_FORMAT", "Sources", "TableBuilder", "build_table", "dump_table",
           "lexnames_from_man_page", "load_sources", "main", "noun_lemma", "open_wordnet", "primary_senses",
           "read_caption_words", "read_vocab_file"]
