"""A synthetic sentiment task made by code: offline, deterministic by seed, non-trivial.

Each example is a short review built from templates: a subject, an adjective of known polarity,
optional intensifiers and filler clauses, and with probability ``negation_rate`` a negation
("was not", "hardly") that flips the label, and with probability ``contrast_rate`` a
first clause of random polarity joined by ", but": the second clause decides. The adjective vocabulary is split in two disjoint halves:
training sentences use one half, validation and test sentences only the other. A model therefore
cannot memorise words; it must carry the meaning of *unseen* adjectives, which a pretrained encoder
knows from pre-training and a randomly initialised one does not (it stays near chance on unseen
words), and it must learn the negation rule. Labels are balanced, so the majority-class baseline is
about 50 %.
"""

from __future__ import annotations

import random

POSITIVE = [
    "excellent", "wonderful", "superb", "delightful", "brilliant", "charming", "splendid", "terrific",
    "fantastic", "lovely", "marvelous", "outstanding", "pleasant", "remarkable", "enjoyable", "gorgeous",
    "impressive", "magnificent", "stunning", "uplifting", "heartwarming", "fabulous", "exceptional",
    "graceful", "inspiring", "moving", "refreshing", "satisfying", "touching", "beautiful", "great",
    "good", "amazing", "perfect", "clever", "funny", "elegant", "engaging", "thrilling", "masterful",
]
NEGATIVE = [
    "terrible", "awful", "dreadful", "horrible", "boring", "dull", "tedious", "disappointing", "mediocre",
    "painful", "awkward", "clumsy", "lifeless", "pathetic", "miserable", "unpleasant", "annoying",
    "forgettable", "bland", "messy", "tiresome", "depressing", "lousy", "weak", "poor", "bad", "ugly",
    "stupid", "pointless", "shallow", "sloppy", "tragic", "irritating", "hollow", "flat", "grim",
    "confusing", "cheap", "lame", "dreary",
]
SUBJECTS = ["the film", "the movie", "the story", "the acting", "the plot", "the ending", "the script",
            "the soundtrack", "the performance", "the direction", "this picture", "the dialogue"]
INTENSIFIERS = ["", "", "really ", "truly ", "quite ", "very ", "rather ", "simply "]
FILLERS = ["", "", "", " from start to finish", " in my opinion", " overall", " , to be honest",
           " for most of its running time", " despite the long queue"]
OPENERS = ["", "", "", "i think ", "honestly , ", "my friend said ", "after the premiere , "]


def _split_vocab(words: list[str], rng: random.Random) -> tuple[list[str], list[str]]:
    shuffled = words[:]
    rng.shuffle(shuffled)
    cut = len(shuffled) // 2
    return shuffled[:cut], shuffled[cut:]


def _clause(rng: random.Random, pos: list[str], neg: list[str], negation_rate: float) -> tuple[str, int]:
    polarity = rng.randrange(2)
    adjective = rng.choice(pos if polarity else neg)
    negated = rng.random() < negation_rate
    verb = rng.choice(["was not", "is not", "was hardly", "never felt"]) if negated else rng.choice(["was", "is", "felt", "seemed"])
    return f"{rng.choice(SUBJECTS)} {verb} {rng.choice(INTENSIFIERS)}{adjective}", polarity ^ int(negated)


def _sentence(rng: random.Random, pos: list[str], neg: list[str], negation_rate: float, contrast_rate: float) -> tuple[str, int]:
    """One review; with probability ``contrast_rate`` two clauses joined by "but": the second decides."""
    clause, label = _clause(rng, pos, neg, negation_rate)
    if rng.random() < contrast_rate:
        first, _ = _clause(rng, pos, neg, negation_rate)
        clause = f"{first} , but {clause}"
    return f"{rng.choice(OPENERS)}{clause}{rng.choice(FILLERS)} .", label


def make_synthetic_sentiment(
    seed: int = 0, train_size: int = 2000, val_size: int = 500, test_size: int = 500, negation_rate: float = 0.3,
    contrast_rate: float = 0.3,
) -> dict[str, list[tuple[str, None, int]]]:
    """Splits ``train`` / ``val`` / ``test`` of (text, None, label); val and test use unseen adjectives."""
    vocab_rng = random.Random(1234)  # the vocabulary split is fixed, independent of the data seed
    pos_train, pos_eval = _split_vocab(POSITIVE, vocab_rng)
    neg_train, neg_eval = _split_vocab(NEGATIVE, vocab_rng)
    out = {}
    for split, size, pos, neg, offset in (
        ("train", train_size, pos_train, neg_train, 0),
        ("val", val_size, pos_eval, neg_eval, 1),
        ("test", test_size, pos_eval, neg_eval, 2),
    ):
        rng = random.Random(seed * 1000 + offset)
        out[split] = [(text, None, label) for text, label in (_sentence(rng, pos, neg, negation_rate, contrast_rate) for _ in range(size))]
    return out
