"""Phoneme sets and the maps between them.

    synthesizer symbols (espeak-ng mnemonics, Festival's radio phone set)
        → ARPAbet (39 phonemes + `sil`)
        → Oculus's 15 visemes (`VISEMES`)
        → 6 groups (`GROUPS`, for the "6-group accuracy" metric)

A synthesizer symbol may stand for two ARPAbet phonemes (espeak's `@L` is a
schwa + l, `aI@` is "ire"); the caller splits such a segment in equal halves.
Unknown symbols are never dropped: `to_arpabet` falls back (documented below),
counts them in `UNKNOWN` and logs each new one once, so a new espeak release
that adds a symbol shows up in the logs and the tests instead of silently
becoming silence.
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger(__name__)

SIL = "sil"
ARPABET: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH",
    "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
    "UH", "UW", "V", "W", "Y", "Z", "ZH", SIL,
)
VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"})
STOPS = frozenset({"P", "B", "T", "D", "K", "G", "CH", "JH"})  # a closure, then a release
NASALS = frozenset({"M", "N", "NG"})

# Oculus's 15 visemes, in the order of `avatar_rt.motion.blendshapes.VISEME_NAMES`.
VISEMES: tuple[str, ...] = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "ih", "oh", "ou")
VISEME_INDEX = {v: i for i, v in enumerate(VISEMES)}

ARPABET_TO_VISEME: dict[str, str] = {
    SIL: "sil",
    "P": "PP", "B": "PP", "M": "PP",
    "F": "FF", "V": "FF",
    "TH": "TH", "DH": "TH",
    "T": "DD", "D": "DD",
    # Velars; HH has no mouth shape of its own (it takes the next vowel's, which the
    # coarticulation model does through its low dominance) and is labelled with the
    # other back consonants, in the neutral group.
    "K": "kk", "G": "kk", "NG": "kk", "HH": "kk",
    "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH",
    "S": "SS", "Z": "SS",
    "N": "nn", "L": "nn",
    "R": "RR", "ER": "RR",
    # Diphthongs are labelled by their first, longer, part.
    "AA": "aa", "AE": "aa", "AH": "aa", "AY": "aa", "AW": "aa",
    "EH": "E", "EY": "E",
    "IH": "ih", "IY": "ih", "Y": "ih",
    "AO": "oh", "OW": "oh", "OY": "oh",
    "UH": "ou", "UW": "ou", "W": "ou",
}

GROUPS: tuple[str, ...] = ("neutral", "closed", "labiodental", "rounded", "spread", "open")
VISEME_TO_GROUP: dict[str, str] = {
    "PP": "closed", "FF": "labiodental",
    "CH": "rounded", "RR": "rounded", "oh": "rounded", "ou": "rounded",
    "SS": "spread", "E": "spread", "ih": "spread",
    "aa": "open",
    "sil": "neutral", "TH": "neutral", "DD": "neutral", "kk": "neutral", "nn": "neutral",
}
# viseme index → group index, for vectorised metrics.
VISEME_GROUP_INDEX: tuple[int, ...] = tuple(GROUPS.index(VISEME_TO_GROUP[v]) for v in VISEMES)

# espeak-ng mnemonics of the English voices (en, en-us, en-gb*, en-029, en-us-nyc),
# collected from the phoneme events of the whole `wamerican` word list in every voice.
ESPEAK_TO_ARPABET: dict[str, tuple[str, ...]] = {
    # pauses
    "_": (SIL,), "_:": (SIL,), "_!": (SIL,), "_|": (SIL,), "_^_": (SIL,),
    # consonants
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "g": ("G",),
    "t#": ("T",), "t2": ("T",), "t[": ("T",), "d#": ("D",), "?": ("T",),  # flaps, dental t, glottal stop
    "f": ("F",), "v": ("V",), "T": ("TH",), "D": ("DH",), "s": ("S",), "z": ("Z",), "z#": ("Z",),
    "S": ("SH",), "Z": ("ZH",), "h": ("HH",), "x": ("HH",), "tS": ("CH",), "dZ": ("JH",),
    "m": ("M",), "n": ("N",), "N": ("NG",), "n-": ("N",), "m-": ("M",),
    "l": ("L",), "l#": ("L",), "l/": ("L",), "l/2": ("L",), "z/2": ("Z",), "r": ("R",), "r-": ("R",), "w": ("W",), "w#": ("W",), "j": ("Y",),
    ";": ("Y",),  # the linking glide espeak appends to i-like vowels before a vowel ("happy_apple")
    # vowels
    "a": ("AE",), "a2": ("AE",), "aa": ("AE",), "A#": ("AE",), "a#": ("AH",), "a#2": ("AH",), "@#": ("AH",), "A:": ("AA",), "A@": ("AA",), "A~": ("AA",),
    "0": ("AA",), "0#": ("AA",), "02": ("AA",), "V": ("AH",), "VR": ("ER",),
    "@": ("AH",), "@-": ("AH",), "@2": ("AH",), "@5": ("AH",), "3": ("ER",), "3:": ("ER",),
    "E": ("EH",), "E2": ("EH",), "E3": ("EH",), "e": ("EH",), "e:": ("EY",), "e#": ("EH",), "E#": ("EH",), "e@": ("EH",), "eI": ("EY",),
    "I": ("IH",), "I2": ("IH",), "I#": ("IH",), "I2#": ("IH",), "i": ("IY",), "i:": ("IY",), "IR": ("IH", "R"),
    "O:": ("AO",), "O": ("AO",), "O2": ("AO",), "O@": ("AO",), "o@": ("AO",), "O~": ("AO",), "OI": ("OY",),
    "oU": ("OW",), "oU#": ("OW",), "o": ("OW",), "o:": ("OW",), "U": ("UH",), "U@": ("UH",), "u:": ("UW",), "u": ("UW",),
    "aI": ("AY",), "aI2": ("AY",), "aU": ("AW",),
    # two sounds in one symbol: split in equal halves by the caller
    "@L": ("AH", "L"), "aI@": ("AY", "AH"), "aI3": ("AY", "ER"), "aU@": ("AW", "AH"),
    "i@": ("IY", "AH"), "i@3": ("IY", "ER"),
}

# Festival's radio phone set (kal_diphone; /usr/share/festival/radio_phones.scm).
FESTIVAL_TO_ARPABET: dict[str, tuple[str, ...]] = {
    **{p.lower(): (p,) for p in ARPABET if p != SIL},
    "ax": ("AH",), "axr": ("ER",), "ix": ("IH",), "dx": ("D",), "hv": ("HH",), "nx": ("N",),
    "el": ("L",), "em": ("M",), "en": ("N",),
    "pau": (SIL,), "h#": (SIL,), "brth": (SIL,),
}


# ---------------------------------------------------------------- Festival voices of other languages
#
# Each voice's own phone set (dumped from `(PhoneSet.description)` of the loaded voice) → the ARPAbet
# phoneme with the nearest *mouth shape* (the lip model sees visemes, not phonemes):
#   * bilabials p/b/m (plain, long or palatalised) → P/B/M; labiodentals f/v → F/V, the labiodental
#     nasal [ɱ] of Italian "inferno" → V (lower lip on the upper teeth, voiced);
#   * rounded vowels → UW (close), OW (close-mid), AO (open-mid); front rounded [y] → UW and [ø] → OW,
#     because for the lips the rounding matters more than the tongue;
#   * open vowels → AA ([a]), AE ([æ], Finnish ä); spread vowels → IY (close, long), IH (short or
#     centralised i, Russian ы), EY (close-mid e), EH (open-mid e); reduced/central vowels → AH;
#   * alveolar taps and trills (every r here; none is rounded like the English r) → D, as Festival's
#     flap `dx` (tongue tip at the ridge, lips neutral); Czech ř → ZH/SH (a fricative trill: lips as ž/š);
#   * palatal and alveolo-palatal consonants take their place of articulation's nearest English sound:
#     ɲ → N, ʎ → L, c/ɟ (Czech ť/ď) → T/D, Russian щ → SH, x → HH; affricates ts/dz are two sounds
#     (T S / D Z, split in halves), tʃ/dʒ → CH/JH;
#   * pauses (`#`, `##`, `_`, `pau`) → sil.
# Palatalisation (Russian `pp`, `mm`, ...) and length (Finnish `p:`) do not change the lip shape.

ITALIAN_TO_ARPABET: dict[str, tuple[str, ...]] = {  # pc_diphone, lp_diphone (phone set "italian")
    "#": (SIL,),
    "i": ("IY",), "e": ("EY",), "E": ("EH",), "a": ("AA",), "o": ("OW",), "O": ("AO",), "u": ("UW",),
    "i1": ("IY",), "e1": ("EY",), "E1": ("EH",), "a1": ("AA",), "o1": ("OW",), "O1": ("AO",), "u1": ("UW",),
    "j": ("Y",), "w": ("W",),
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "g": ("G",),
    "f": ("F",), "v": ("V",), "s": ("S",), "z": ("Z",), "S": ("SH",), "Z": ("ZH",),
    "ts": ("T", "S"), "dz": ("D", "Z"), "tS": ("CH",), "dZ": ("JH",),
    "m": ("M",), "n": ("N",), "J": ("N",), "ng": ("NG",), "nf": ("V",),
    "l": ("L",), "L": ("L",), "r": ("D",),
}

CATALAN_TO_ARPABET: dict[str, tuple[str, ...]] = {  # upc_ca_ona_hts (phone set "upc_catalan-central")
    "pau": (SIL,), "_": (SIL,), "#": (SIL,),
    "ax": ("AH",), "a": ("AA",), "a1": ("AA",), "e": ("EY",), "e1": ("EY",), "E": ("EH",), "E1": ("EH",),
    "i": ("IY",), "i1": ("IY",), "o": ("OW",), "o1": ("OW",), "O": ("AO",), "O1": ("AO",),
    "u": ("UW",), "u1": ("UW",), "j": ("Y",), "w": ("W",),
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "g": ("G",),
    "f": ("F",), "s": ("S",), "z": ("Z",), "S": ("SH",), "Z": ("ZH",),
    "m": ("M",), "n": ("N",), "J": ("N",), "l": ("L",), "L": ("L",), "r": ("D",), "rr": ("D",),
}

CZECH_TO_ARPABET: dict[str, tuple[str, ...]] = {  # czech_dita, czech_machac (phone set "czech")
    "#": (SIL,), "_": (SIL,),
    "a": ("AA",), "a:": ("AA",), "e": ("EH",), "e:": ("EH",), "i": ("IH",), "i:": ("IY",),
    "o": ("AO",), "o:": ("OW",), "u": ("UH",), "u:": ("UW",),
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "g": ("G",),
    "t~": ("T",), "d~": ("D",), "c": ("T", "S"), "dz": ("D", "Z"), "c~": ("CH",), "dz~": ("JH",),
    "f": ("F",), "v": ("V",), "s": ("S",), "z": ("Z",), "s~": ("SH",), "z~": ("ZH",),
    "ch": ("HH",), "h": ("HH",), "j": ("Y",),
    "m": ("M",), "n": ("N",), "n~": ("N",), "n*": ("NG",),
    "l": ("L",), "r": ("D",), "r~": ("ZH",), "r~*": ("SH",),
}

_FINNISH_SHORT: dict[str, tuple[str, ...]] = {
    "a": ("AA",), "e": ("EH",), "i": ("IH",), "o": ("OW",), "u": ("UW",), "y": ("UW",), "@": ("AE",),
    "7": ("OW",), "&": ("AH",),
    "p": ("P",), "b": ("B",), "t": ("T",), "d": ("D",), "k": ("K",), "g": ("G",),
    "f": ("F",), "v": ("V",), "T": ("TH",), "D": ("DH",), "s": ("S",), "z": ("Z",), "S": ("SH",),
    "Z": ("ZH",), "h": ("HH",), "m": ("M",), "n": ("N",), "N": ("NG",), "l": ("L",), "L": ("L",),
    "r": ("D",), "j": ("Y",), "w": ("W",),
}
FINNISH_TO_ARPABET: dict[str, tuple[str, ...]] = {  # suo_fi_lj_diphone, hy_fi_mv_diphone (phone set "finnish")
    "#": (SIL,), "##": (SIL,), "_": (SIL,),
    **_FINNISH_SHORT,
    **{k + ":": v for k, v in _FINNISH_SHORT.items()},  # length marks: the same mouth, held longer
    "i:": ("IY",),
}

RUSSIAN_TO_ARPABET: dict[str, tuple[str, ...]] = {  # msu_ru_nsh_clunits (phone set "msu_ru")
    "pau": (SIL,), "#": (SIL,), "_": (SIL,),
    # stressed (doubled letters), unstressed and reduced vowels
    "ii": ("IY",), "yy": ("IH",), "uu": ("UW",), "ee": ("EH",), "oo": ("OW",), "aa": ("AA",),
    "a": ("AH",), "e": ("IH",), "i": ("IH",), "y": ("IH",), "u": ("UH",),
    "ae": ("AH",), "ay": ("AH",), "ur": ("UH",),
    # consonants, plain and palatalised (doubled)
    "p": ("P",), "pp": ("P",), "b": ("B",), "bb": ("B",), "t": ("T",), "tt": ("T",), "d": ("D",), "dd": ("D",),
    "k": ("K",), "kk": ("K",), "g": ("G",), "gg": ("G",), "c": ("T", "S"), "ch": ("CH",),
    "f": ("F",), "ff": ("F",), "v": ("V",), "vv": ("V",), "s": ("S",), "ss": ("S",), "z": ("Z",), "zz": ("Z",),
    "sh": ("SH",), "sch": ("SH",), "zh": ("ZH",), "h": ("HH",), "hh": ("HH",),
    "m": ("M",), "mm": ("M",), "n": ("N",), "nn": ("N",), "l": ("L",), "ll": ("L",), "r": ("D",), "rr": ("D",),
    "j": ("Y",),
}

# Fallback for an unknown symbol: strip espeak's trailing modifiers (# 2 3 : ; - etc.)
# one character at a time and look again; if nothing matches, a neutral mid vowel
# (AH: jaw half open, lips relaxed) is the least wrong mouth for an unknown speech sound.
FALLBACK = ("AH",)
UNKNOWN: Counter[str] = Counter()


def to_arpabet(symbol: str, table: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """ARPAbet phoneme(s) for one synthesizer symbol (stress marks ignored)."""
    sym = symbol.lstrip("'\",%=ˈˌ")
    if sym in table:
        return table[sym]
    UNKNOWN[symbol] += 1
    if UNKNOWN[symbol] == 1:
        log.warning("unknown phoneme symbol %r: using the fallback", symbol)
    for cut in range(len(sym) - 1, 0, -1):
        if sym[:cut] in table:
            return table[sym[:cut]]
    return FALLBACK


def espeak_to_arpabet(symbol: str) -> tuple[str, ...]:
    return to_arpabet(symbol, ESPEAK_TO_ARPABET)


def festival_to_arpabet(symbol: str) -> tuple[str, ...]:
    return to_arpabet(symbol, FESTIVAL_TO_ARPABET)


def mapper(table: dict[str, tuple[str, ...]]):
    """A symbol → ARPAbet function over `table` (unknown symbols counted in UNKNOWN, as everywhere)."""
    def to(symbol: str) -> tuple[str, ...]:
        return to_arpabet(symbol, table)
    return to


def flite_to_arpabet(symbol: str) -> tuple[str, ...]:
    """flite's CMU phone set (lowercase ARPAbet, `ax`, `pau`) is a subset of Festival's radio set."""
    return to_arpabet(symbol, FESTIVAL_TO_ARPABET)


def viseme_index(arpabet: str) -> int:
    return VISEME_INDEX[ARPABET_TO_VISEME[arpabet]]


assert set(ARPABET_TO_VISEME) == set(ARPABET) and len(ARPABET) == 40
assert set(VISEME_TO_GROUP) == set(VISEMES)
assert all(p in ARPABET for t in (ESPEAK_TO_ARPABET, FESTIVAL_TO_ARPABET, ITALIAN_TO_ARPABET, CATALAN_TO_ARPABET,
                                   CZECH_TO_ARPABET, FINNISH_TO_ARPABET, RUSSIAN_TO_ARPABET)
           for ps in t.values() for p in ps)
