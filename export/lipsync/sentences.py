"""Sentences to synthesize, made here without any corpus.

Three sources, mixed: sentence templates with word slots, plain word sequences
with punctuation (pauses and question intonation), and short phrases written for
this project to pack in the mouth shapes that matter (bilabial closures, rounding,
spreading, wide-open vowels, labiodentals).

The words come from the Debian `wamerican` list (/usr/share/dict/american-english),
filtered to lowercase, ordinary-looking words. Train and held-out sets are disjoint:
the held-out set has its own templates and phrases, and its own content words (a
fixed 1/8 of the list chosen by a hash of the word, independent of any seed).
Only the small closed class of function words below is shared, as in any speech.
Everything is deterministic given the `numpy.random.Generator`.

Other languages (for Festival's Italian, Catalan, Czech, Finnish and Russian voices): `sentence_in` /
`language_sentences` draw from hand-written phrases, frames and nouns in `sentences_intl`, with the
same disjoint train / held-out split.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from export.lipsync import sentences_intl as _intl

WORD_LIST = Path("/usr/share/dict/american-english")
SPLITS = ("train", "heldout")  # "val" draws from the train sentences

FUNCTION_WORDS = (
    "the", "a", "an", "of", "to", "and", "in", "on", "at", "with", "for", "from", "by", "is", "was",
    "are", "were", "be", "it", "this", "that", "my", "your", "his", "her", "our", "their", "we", "you",
    "they", "he", "she", "not", "no", "some", "every", "very", "just", "then", "so", "but", "or", "if",
)

# Frames with {} slots for content words.
TEMPLATES = {
    "train": (
        "I never said {}, I said {}.", "Please put the {} beside the {}.",
        "Would you bring me the {} from the {}?", "Maybe the {} was {} after all.",
        "We found a {} and a {} under the bridge.", "Why does the {} look so {} today?",
        "Tell me about the {}, then show me the {}.", "Every morning my {} goes {} near the {}.",
        "Nobody expected the {} to be {}.", "Say {} again, slowly.", "Is it {} or {}?",
        "The {} was {}, but the {} was not.", "My brother keeps a {} in his {}.",
        "Before lunch, move the {} away from the {}.", "Which {} did you pick for the {}?",
        "Look, a {}! Over by the {}.", "Our teacher wrote {} on the board, next to {}.",
        "If the {} breaks, use the {} instead.", "You may call it {}, but I call it {}.",
        "Half of the {} went to the {}, the rest to the {}.", "Wait for the {} before you open the {}.",
        "Honestly, {} is my favourite word.", "Do you remember the {} at the {}?",
        "The map shows a {} behind the {}.", "Good evening, here is the {} report.",
    ),
    "heldout": (
        "Could the {} ever become {}?", "Right after the {}, we heard a {}.",
        "Hold the {} while I fix the {}.", "Somebody left a {} outside the {}.",
        "Not every {} is as {} as this one.", "Put simply, the {} needs a {}.",
        "When did the {} first meet the {}?", "Bring both {} and {} to the meeting.",
        "Her answer was {}, then {}.", "The last {} of the season was {}.",
        "Count the {} twice, please.", "Along the way, the {} turned into a {}.",
    ),
}

# Written for this project: dense in the shapes the lip model must get right.
PHRASES = {
    "train": (
        "Pop the big purple balloon before the bus moves.", "Maybe Bobby made a map of the beach by moonlight.",
        "Five vivid violets fell off the very high shelf.", "Few of us knew who threw the blue shoe through the window.",
        "She sees three green leaves drifting past the street.", "Father parked the car far from the calm harbour.",
        "Oh no, the old boat floats slowly toward the cove.", "Check the chart, then choose which jar of jam to share.",
        "The thin thread through the cloth was thicker than I thought.", "Red roses rarely grow near the river road.",
        "Sit still and listen, the kitten is hiding in the basket.", "Good wool is useful for boots and hoods.",
        "Ten men went west to mend the fence.", "Mom baked a plum pie, and we ate most of it.",
        "Wow, what a wonderful window view!", "Please keep the peace, it is only a simple mistake.",
        "Half a loaf of fresh bread is better than none.", "Who knew the moon looked so huge in June?",
        "Bring my bag back by Monday, or maybe Tuesday.", "Papa put the pepper in the pot by mistake.",
        "A yellow yo-yo rolled under the sofa.", "Judge the jury gently, George.",
        "Shall we watch the ships sail past the shore?", "Vera gave every visitor a warm welcome.",
        "The market opens at nine and closes at five.", "Mummy, may I have more marmalade, please?",
        "Buy a few ripe apples and bake them with butter.", "Ahh, the hot bath was just what I wanted.",
        "Ooh, you look cool in that blue suit.", "Eat each piece of cheese slowly.",
        "How about a cup of cocoa by the fire?", "Thanks, but I think I will pass this time.",
        "Umbrellas open up when the rain begins.", "Bobby, stop bouncing the ball in the bedroom.",
        "Pam, pass me the paper plates.", "Oh boy, the puppy ate my homework.",
        "Wherever you wander, remember the way home.", "Fine food and fair prices, that was the promise.",
    ),
    "heldout": (
        "Bill, pop by the pub and pick up the pies.", "Every mob of wombats bumps along the path.",
        "Whose bright blue boots were left by the pool?", "Please bring me both maps, the big one and the small one.",
        "Free fish for everyone who phones before five.", "Three keen bees hummed above the green field.",
        "The loud owl flew out of the hollow oak.", "A hungry bear sniffed the warm air at dawn.",
        "My puppy barks at every passing bicycle.", "Bob's mum bought him a pair of brown mittens.",
        "Few foxes roam where the farmer plants wheat.", "The shy sheep chewed on the fresh shoots.",
    ),
}

_WORD_RE = re.compile(r"[a-z]{2,10}")


def _heldout_word(word: str) -> bool:
    return zlib.crc32(word.encode()) % 8 == 0  # a fixed 1/8, whatever the seed


@lru_cache(maxsize=None)
def words(split: str) -> tuple[str, ...]:
    """Content words of a split: lowercase (no names), 2–10 letters, with a vowel, no odd spellings."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not WORD_LIST.exists():
        raise FileNotFoundError(f"{WORD_LIST} is missing: apt-get install wamerican")
    keep = []
    for w in WORD_LIST.read_text(encoding="utf-8", errors="ignore").split():
        if (not _WORD_RE.fullmatch(w) or not re.search("[aeiouy]", w) or re.search(r"(.)\1\1", w)
                or re.search("[bcdfghjklmnpqrstvwxz]{5}", w) or w in FUNCTION_WORDS):
            continue
        if _heldout_word(w) == (split == "heldout"):
            keep.append(w)
    return tuple(keep)


def _pick(rng: np.random.Generator, items) -> str:
    return items[int(rng.integers(len(items)))]


def _word_sequence(rng: np.random.Generator, vocab: tuple[str, ...]) -> str:
    n = int(rng.integers(3, 11))
    out = []
    for i in range(n):
        if i and rng.random() < 0.35:
            out.append(_pick(rng, FUNCTION_WORDS))
        out.append(_pick(rng, vocab))
        if i < n - 1 and rng.random() < 0.15:
            out[-1] += ","  # a phrase break: a pause, the mouth goes back towards rest
    text = " ".join(out)
    return text[0].upper() + text[1:] + _pick(rng, (".", ".", ".", "?", "!"))


def _template(rng: np.random.Generator, split: str, vocab: tuple[str, ...]) -> str:
    frame = _pick(rng, TEMPLATES[split])
    return frame.format(*(_pick(rng, vocab) for _ in range(frame.count("{}"))))


def sentence(rng: np.random.Generator, split: str = "train") -> str:
    """One sentence of the given split ("val" uses the train material)."""
    split = "train" if split == "val" else split
    vocab = words(split)
    kind = rng.random()
    if kind < 0.35:
        return _template(rng, split, vocab)
    if kind < 0.6:
        return _word_sequence(rng, vocab)
    if kind < 0.8:
        return _pick(rng, PHRASES[split])
    return _pick(rng, PHRASES[split]) + " " + _template(rng, split, vocab)


def sentences(n: int, seed: int, split: str = "train") -> list[str]:
    rng = np.random.default_rng(seed)
    return [sentence(rng, split) for _ in range(n)]


# ---------------------------------------------------------------- other languages (Festival's voices)

LANGUAGES = ("en",) + tuple(sorted(_intl.PHRASES))


def _heldout_noun(word: str) -> bool:
    return zlib.crc32(word.encode("utf-8")) % 6 == 0  # a fixed ~1/6 of each language's nouns


def nouns(language: str, split: str) -> tuple[str, ...]:
    split = "train" if split == "val" else split
    return tuple(w for w in _intl.NOUNS[language] if _heldout_noun(w) == (split == "heldout"))


def sentence_in(rng: np.random.Generator, language: str, split: str = "train") -> str:
    """One sentence in `language` ("en" is `sentence`). Hand-written phrases, frames filled with nouns, or both;
    train and held-out use disjoint phrases, frames and nouns."""
    if language == "en":
        return sentence(rng, split)
    if language not in _intl.PHRASES:
        raise ValueError(f"no sentences for language {language!r}; have {LANGUAGES}")
    split = "train" if split == "val" else split
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    phrases, frames, vocab = _intl.PHRASES[language][split], _intl.TEMPLATES[language][split], nouns(language, split)
    kind = rng.random()
    if kind < 0.5:
        return _pick(rng, phrases)
    if kind < 0.85:
        return _fill(rng, frames, vocab)
    return _pick(rng, phrases) + " " + _fill(rng, frames, vocab)


def _fill(rng: np.random.Generator, frames: tuple[str, ...], vocab: tuple[str, ...]) -> str:
    frame = _pick(rng, frames)
    text = frame.format(*(_pick(rng, vocab) for _ in range(frame.count("{}"))))
    return text[0].upper() + text[1:]


def language_sentences(language: str, n: int, seed: int, split: str = "train") -> list[str]:
    rng = np.random.default_rng(seed)
    return [sentence_in(rng, language, split) for _ in range(n)]


def probe_sentence(language: str) -> str:
    """A short sentence with p/b/m in `language` (tests and voice probes)."""
    return _intl.BILABIAL[language]


