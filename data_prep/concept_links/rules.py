"""The link rules and their thresholds, each with the reason for its value."""

from __future__ import annotations

LINKS_FORMAT = "fusion.concept_links/1"
# A caption word joins the table when the corpus uses it this often: rarer words are names and typos.
MIN_WORD_COUNT = 5
# A noun sense that lies above more ImageNet classes than this is too broad to be seen
# ("object", "artifact", "organism"); "animal" (398 classes) and "dog" (118 breeds) still link.
MAX_IMAGENET_CLASSES = 400
# The same for AudioSet: a noun above more of its classes than this ("sound", "music") names no one
# sound by itself (a class whose name holds the word still links: "Pop music" -> music).
MAX_AUDIOSET_CLASSES = 30
# Verbs implied by nouns through the corpus: the verb and the noun share at least this many
# captions, with pointwise mutual information at least log(3) ("guitar" -> "playing"), and a
# noun lends its links to its 3 strongest verbs at most.
MIN_PAIR_COUNT = 20
MIN_PMI = 1.0986  # log(3)
MAX_VERBS_PER_NOUN = 3

RULES = {
    "noun": "a caption word (>= %d corpus uses) that WordNet 3.0 knows as a noun (the audible-noun table's rule: "
            "no function word, noun uses >= other uses, or used after a determiner)" % MIN_WORD_COUNT,
    "imagenet": "a noun links to an ImageNet class when one of its primary senses is the class's synset or one of "
                "its hypernyms (a sense above more than %d classes links to none), or when the noun is one of the "
                "class's lemma names" % MAX_IMAGENET_CLASSES,
    "places2": "a noun links to a Places2 scene when it is a word of the scene's name or one of its primary senses "
               "is the scene's head synset or a hypernym of it",
    "audioset": "a noun links to an AudioSet class when it is a word of one of the class's names, or one of its "
                "primary senses is a hypernym of a name's head noun (not when that noun's first sense is a person, "
                "'Printer'; a sense above more than %d classes links to none); a verb links when it is (a synonym of) a verb in the class's names or derived from the "
                "class's noun (speaking -> talking, laughter -> laughing)" % MAX_AUDIOSET_CLASSES,
    "implied": "a verb (-ing form) implied by nouns: >= %d shared captions and PMI >= log 3 in the corpus, the "
               "noun's %d strongest verbs; the verb gets the union of its nouns' links"
               % (MIN_PAIR_COUNT, MAX_VERBS_PER_NOUN),
}
