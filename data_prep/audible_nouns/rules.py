"""Which nouns are audible: the WordNet anchors, the ESC-10 anchors and the rule in words.

Anchors are (lemma, lexicographer file): the lemma's first noun sense in that file. They
are named this way (not "dog.n.01") so that the same anchors resolve in the tiny test
WordNet. A noun is audible when its first sense lies under an AUDIBLE anchor and not under
a MUTE one, or when it names an ESC-10 class.
"""

from __future__ import annotations

from fusion.verifier.table import TABLE_FORMAT

MAX_NAMING_HYPONYMS = 12  # a direct hypernym names an ESC-10 class only if it is this specific

AUDIBLE_ANCHORS: tuple[tuple[str, str], ...] = (
    ("animal", "noun.Tops"), ("person", "noun.Tops"),          # calls, voices, footsteps
    ("people", "noun.group"), ("crowd", "noun.group"), ("audience", "noun.group"),
    ("self-propelled_vehicle", "noun.artifact"), ("aircraft", "noun.artifact"),
    ("train", "noun.artifact"), ("vessel", "noun.artifact"),   # engines, rotors, horns
    ("musical_instrument", "noun.artifact"), ("acoustic_device", "noun.artifact"),
    ("noisemaker", "noun.artifact"), ("timepiece", "noun.artifact"), ("power_tool", "noun.artifact"),
    ("engine", "noun.artifact"), ("motor", "noun.artifact"), ("gun", "noun.artifact"),
    ("telephone", "noun.artifact"), ("radio", "noun.artifact"), ("television", "noun.artifact"),
    ("atmospheric_phenomenon", "noun.phenomenon"),             # rain, wind, storms
    ("fire", "noun.event"), ("explosion", "noun.event"), ("sound", "noun.event"),  # sound.n.04: noises, cries
    ("sea", "noun.object"), ("ocean", "noun.object"), ("stream", "noun.object"),
    ("waterfall", "noun.object"), ("wave", "noun.event"), ("surf", "noun.event"),
    ("music", "noun.communication"), ("speech", "noun.communication"), ("sneeze", "noun.state"),
    # Found missing on MSR-VTT captions (scripts/audible_coverage.py): voices, laughter, cheering.
    ("sound", "noun.attribute"), ("auditory_communication", "noun.communication"),
    ("applause", "noun.communication"), ("cheering", "noun.communication"), ("concert", "noun.communication"),
)
# Nouns whose WordNet first sense is not what captions mean by them, where that sense would
# make them audible (found on MSR-VTT): the noun -> the caption sense.
CAPTION_SENSES_NOT_AUDIBLE: dict[str, str] = {
    "stroller": "a baby buggy, not a saunterer", "bat": "a baseball bat, not the animal",
    "monitor": "a screen, not a proctor", "coaster": "a roller coaster or drink mat, not a coast dweller",
    "teaser": "a trailer, not a wool worker", "caster": "a wheel, not a metal worker", "mod": "a game modification",
    "hack": "a trick, not a drudge", "clipping": "a video clip", "excerpt": "a video excerpt",
    "ring": "a boxing ring or a finger ring, not a sound", "suite": "rooms, not music",
    "generation": "a product generation, not coevals", "kansas": "the US state, not the Kansa people",
    "twitter": "the web site, not bird calls",
}
MUTE_ANCHORS: tuple[tuple[str, str], ...] = (  # animals without audible calls (insects do buzz)
    ("fish", "noun.animal"), ("mollusk", "noun.animal"), ("worm", "noun.animal"), ("crustacean", "noun.animal"),
    ("coelenterate", "noun.animal"), ("echinoderm", "noun.animal"), ("sponge", "noun.animal"), ("arachnid", "noun.animal"))
ESC10_ANCHORS: dict[str, tuple[tuple[str, str], ...]] = {
    "Dog bark": (("dog", "noun.animal"),), "Rain": (("rain", "noun.phenomenon"),),
    "Sea waves": (("sea", "noun.object"), ("ocean", "noun.object"), ("wave", "noun.event"), ("surf", "noun.event")),
    "Baby cry": (("baby", "noun.person"),), "Clock tick": (("clock", "noun.artifact"),),
    "Person sneeze": (("sneeze", "noun.state"),), "Helicopter": (("helicopter", "noun.artifact"),),
    "Chainsaw": (("chain_saw", "noun.artifact"),), "Rooster": (("rooster", "noun.animal"),),
    "Fire crackling": (("fire", "noun.event"), ("campfire", "noun.event"), ("flame", "noun.process")),
}
RULE = ("A vocabulary word is a noun when WordNet 3.0 knows it as a noun, it is no function word, and its "
        "tagged noun uses are at least its verb/adjective/adverb uses (or the captions use it as a noun: "
        "'a train is'). Primary senses: the first, and any with >= 25% of the tagged noun uses. A noun is "
        "audible when it names an ESC-10 sound source, or its first sense lies under an AUDIBLE anchor "
        "(animals, people, motor vehicles/aircraft/trains/vessels, musical and acoustic devices, clocks, "
        "power tools, engines, guns, phones, weather, fire, explosions, sounds, sea/waves/streams, music, "
        "speech, sneezes, voices, auditory communication, applause, cheering, concerts) and not under a MUTE "
        "one (fish, mollusks, worms, crustaceans, jellyfish, starfish, sponges, spiders). Proper names (a first "
        "sense that is an instance: 'clinton', 'disney') and nouns whose caption sense differs from WordNet's "
        "first ('stroller', 'bat') are not audible; captions are lower case, so a word's proper-name senses "
        "yield to its common ones ('barber'). Links (label space -> classes): imagenet, the ImageNet classes "
        "under a primary sense or its part/member meronyms; places2, the Places2 scenes whose name holds the "
        "noun or whose gloss and the noun's share a synonym; audioset, the AudioSet classes one of whose "
        "names (the ontology's comma-separated display names) is the noun or a synonym of a primary sense, "
        "holds the noun as a word ('guitar' in 'Acoustic guitar'), or is a WordNet noun whose first sense "
        "(unless a person: 'Printer') lies under a primary sense ('animal' -> 'Dog').")
