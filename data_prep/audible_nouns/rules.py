"""Which nouns are audible: the WordNet anchors, the ESC-10 anchors and the rule in words.

Anchors are (lemma, lexicographer file): the lemma's first noun sense in that file. They
are named this way (not "dog.n.01") so that the same anchors resolve in the tiny test
WordNet. A noun is audible when its first sense lies under an AUDIBLE anchor and not under
a MUTE one, or when it names an ESC-10 class.
"""

from __future__ import annotations

TABLE_FORMAT = "fusion.audible_nouns/1"
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
)
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
        "speech, sneezes) and not under a MUTE one (fish, mollusks, worms, crustaceans, jellyfish, starfish, sponges, spiders).")
