from lora_lab.tasks.classification.synthetic import NEGATIVE, POSITIVE, make_synthetic_sentiment


def test_deterministic_balanced_and_unseen_adjectives():
    a, b = make_synthetic_sentiment(seed=5), make_synthetic_sentiment(seed=5)
    assert a == b and a != make_synthetic_sentiment(seed=6)
    assert 0.4 < sum(e[2] for e in a["val"]) / len(a["val"]) < 0.6
    words = lambda split: {w for text, _, _ in a[split] for w in text.split()} & set(POSITIVE + NEGATIVE)
    assert words("train").isdisjoint(words("val")) and words("val") == words("test") | words("val")
