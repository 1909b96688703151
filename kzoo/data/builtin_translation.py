"""Generated parallel and text-to-text data, so translation and T5 need no download.

A small English-like grammar is translated by fixed rules into "Toy", a made-up
language, so the reference of every source sentence is a deterministic function of it
and exact match is the right metric. An English sentence is

    subject verb object [adverb | preposition noun-phrase] .

with a noun phrase `determiner [adjective] noun`: "the" (singular or plural), "a"
(singular) or "some" (plural), an adjective from 8, a noun from 15 (plural: noun + "s"),
a verb from 8 agreeing in number with the subject ("sees" / "see"). Toy differs in:

- order: subject, object, then the adverb or the place phrase, then the verb (SOV); the
  adjective follows the noun; prepositions are postpositions ("in the house" -> "ko dimo
  inu").
- agreement: each noun has a gender, masculine or feminine. Articles and adjectives take
  the ending of the noun's gender and number: "o", "a", "on", "an" (masculine singular,
  feminine singular, masculine plural, feminine plural). The definite article is "k" +
  ending, the indefinite "s" + ending. A plural noun takes the suffix "ek"; the verb
  ends in "e" for a singular subject and "em" for a plural one.

Sentences are lowercase words separated by single spaces, ending in " ." in both
languages: 6 to 12 words with the ".", the Toy sentence as long as the English one.

Examples of a task and split come from one random stream seeded by `(seed, task,
split)`. Train examples leave out the sources of the first `HELD_OUT_VALIDATION`
validation examples of the same task and seed, so a validation set of at most that many
examples (a prefix of the stream) never shares a source with train; pretraining texts
leave out those of every task.

Example:

>>> translate("the big dog sees a small cat .")
'ko varo grando sa miska pita vide .'
>>> translate("some girls carry the apples in the river .")
'san nikaek kan yablaek ka reka inu portem .'
"""

import collections
import functools
import os

import numpy as np

from kzoo import staged_files

TEXT_TO_TEXT_TASKS = ("translate", "plural", "subject")
TASK_PREFIXES = {
    "translate": "translate English to Toy",
    "plural": "pluralize",
    "subject": "subject",
}
HELD_OUT_VALIDATION = 2000
SPLITS = ("train", "validation")

_NOUNS = {  # English singular: (Toy stem, gender).
    "cat": ("miska", "f"),
    "dog": ("varo", "m"),
    "bird": ("pilu", "f"),
    "horse": ("kaval", "m"),
    "cow": ("tumba", "f"),
    "farmer": ("gazdo", "m"),
    "teacher": ("lerina", "f"),
    "girl": ("nika", "f"),
    "boy": ("tomo", "m"),
    "friend": ("drug", "m"),
    "king": ("reko", "m"),
    "apple": ("yabla", "f"),
    "book": ("knig", "m"),
    "house": ("dimo", "m"),
    "river": ("reka", "f"),
}
_ADJECTIVES = {
    "big": "grand",
    "small": "pit",
    "red": "rud",
    "old": "star",
    "young": "jun",
    "happy": "fel",
    "black": "mel",
    "white": "blan",
}
_VERBS = {  # English plural form: (singular form, Toy stem).
    "see": ("sees", "vid"),
    "like": ("likes", "am"),
    "find": ("finds", "trov"),
    "help": ("helps", "jut"),
    "follow": ("follows", "seg"),
    "carry": ("carries", "port"),
    "watch": ("watches", "mir"),
    "chase": ("chases", "kas"),
}
_ADVERBS = {"today": "hodi", "often": "oftu", "quickly": "rapi", "slowly": "lenti"}
_PREPOSITIONS = {"in": "inu", "near": "apud", "with": "kun"}
_ENDINGS = {("m", False): "o", ("f", False): "a", ("m", True): "on", ("f", True): "an"}
_PLURAL_SUFFIX = "ek"
_VERB_ENDINGS = {False: "e", True: "em"}  # By the subject's number.
_DETERMINERS = ("the", "a", "some")
_SENTENCES_PER_DOCUMENT = (3, 6)

# Source word -> (noun, plural) and verb form -> (verb, plural).
_NOUN_FORMS = {n: (n, False) for n in _NOUNS} | {n + "s": (n, True) for n in _NOUNS}
_VERB_FORMS = {v: (v, True) for v in _VERBS}
_VERB_FORMS |= {singular: (v, False) for v, (singular, _) in _VERBS.items()}
_SOURCE_WORDS = frozenset(
    [*_DETERMINERS, *_NOUN_FORMS, *_ADJECTIVES, *_VERB_FORMS, *_ADVERBS, *_PREPOSITIONS]
) | {"."}

_NounPhrase = collections.namedtuple("_NounPhrase", "definite adjective noun plural")
_Sentence = collections.namedtuple("_Sentence", "subject verb object adverb preposition place")


def translate(source_sentence):
    """Returns the Toy translation of an English sentence of the grammar.

    Raises:
        ValueError: a word outside the vocabulary (the message names it), or words in
            an order or number the grammar does not produce.

    Example:
    >>> translate("the cats like the dog .")
    'kan miskaek ko varo amem .'
    >>> translate("the unicorn sees a cat .")
    Traceback (most recent call last):
    ...
    ValueError: translate: unknown word 'unicorn' in 'the unicorn sees a cat .'
    """
    return _toy(_parse(source_sentence))


def translation_pairs(num_examples, seed=0, split="train"):
    """Returns `(english, toy)` pairs: `text_to_text_examples("translate", ...)`.

    Train pairs never have the source of one of the first `HELD_OUT_VALIDATION`
    validation pairs of the same seed.

    Example:
    >>> pairs = translation_pairs(100, seed=0)
    >>> all(translate(source) == target for source, target in pairs)
    True
    >>> validation = translation_pairs(100, seed=0, split="validation")
    >>> set(pairs) & set(validation)
    set()
    """
    return text_to_text_examples("translate", num_examples, seed, split)


def text_to_text_examples(task, num_examples, seed=0, split="train"):
    """Returns `(source, target)` pairs of a text-to-text task, without task prefix.

    Tasks (`TEXT_TO_TEXT_TASKS`; prefixes to prepend in `TASK_PREFIXES`):

    - "translate": an English sentence and its Toy translation.
    - "plural": a sentence with a singular subject and the same sentence with the
      subject made plural ("a" becomes "some"), the verb agreeing.
    - "subject": a sentence and its subject noun phrase.

    Example:
    >>> text_to_text_examples("plural", 1, seed=0)
    [('a river sees the big king today .', 'some rivers see the big king today .')]
    >>> source, target = text_to_text_examples("subject", 1, seed=0)[0]
    >>> source.startswith(target + " ")
    True
    """
    if task not in TEXT_TO_TEXT_TASKS:
        raise ValueError(f"task must be one of {TEXT_TO_TEXT_TASKS}, got {task!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    _check_count(num_examples, "num_examples")
    held_out = _held_out_sources(task, seed) if split == "train" else frozenset()
    examples = []
    rng = _rng(seed, task, split)
    for sentence in _sentences(rng, singular_subject=task == "plural"):
        if len(examples) == num_examples:
            return examples
        source = _english(sentence)
        if source not in held_out:
            examples.append((source, _TARGETS[task](sentence)))


def pretraining_texts(num_documents, seed=0):
    """Returns documents of 3 to 6 English sentences, one sentence per line.

    For span-corruption pretraining on the vocabulary of the text-to-text tasks; no
    sentence is a held-out validation source of any task for the same seed.

    Example:
    >>> print(pretraining_texts(1, seed=0)[0])
    some happy cows carry the small bird near some teachers .
    the happy teachers see a girl .
    some dogs find some young cats near the small horses .
    a bird helps a girl in the cat .
    some young girls help some rivers slowly .
    """
    _check_count(num_documents, "num_documents")
    held_out = set().union(*(_held_out_sources(t, seed) for t in TEXT_TO_TEXT_TASKS))
    rng = _rng(seed, "pretraining", "train")
    sentences = (s for s in map(_english, _sentences(rng)) if s not in held_out)
    low, high = _SENTENCES_PER_DOCUMENT
    documents = []
    for _ in range(num_documents):
        size = int(rng.integers(low, high + 1))
        documents.append("\n".join(next(sentences) for _ in range(size)))
    return documents


def write_builtin_translation(directory, num_train, num_validation, seed=0):
    """Writes `translation_pairs` as `train.tsv` and `valid.tsv` in `directory`.

    Each file has the header `source<TAB>target`, then one pair per line. An existing
    file is an error.

    Returns:
        `(train_path, validation_path)`.

    Example:
    >>> import tempfile
    >>> train, valid = write_builtin_translation(tempfile.mkdtemp(), 3, 2, seed=0)
    >>> open(valid).read().splitlines()[0]
    'source\\ttarget'
    """
    counts = {"train": num_train, "validation": num_validation}
    paths = {
        "train": os.path.join(directory, "train.tsv"),
        "validation": os.path.join(directory, "valid.tsv"),
    }
    for split, path in paths.items():
        count = counts[split]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"num_{split} must be an integer >= 1, got {count!r}")
        if os.path.exists(path):
            raise FileExistsError(f"write_builtin_translation: {path!r} exists")
    os.makedirs(directory, exist_ok=True)
    for split, path in paths.items():
        rows = [("source", "target"), *translation_pairs(counts[split], seed, split)]
        text = "".join(f"{source}\t{target}\n" for source, target in rows)
        staged_files.write_text_atomic(path, text)
    return paths["train"], paths["validation"]


def _parse(sentence):
    words = sentence.split(" ")
    for word in words:
        if word not in _SOURCE_WORDS:
            raise ValueError(f"translate: unknown word {word!r} in {sentence!r}")
    subject, i = _parse_noun_phrase(words, 0, sentence)
    _expect(words, i, _VERB_FORMS, "a verb", sentence)
    verb, plural = _VERB_FORMS[words[i]]
    if plural != subject.plural:
        number = "plural" if subject.plural else "singular"
        message = f"the verb {words[i]!r} must be {number} like its subject"
        raise ValueError(f"translate: {message} in {sentence!r}")
    object_, i = _parse_noun_phrase(words, i + 1, sentence)
    adverb = preposition = place = None
    if i < len(words) and words[i] in _ADVERBS:
        adverb, i = words[i], i + 1
    elif i < len(words) and words[i] in _PREPOSITIONS:
        preposition = words[i]
        place, i = _parse_noun_phrase(words, i + 1, sentence)
    if words[i:] != ["."]:
        got = " ".join(words[i:]) or "the end"
        raise ValueError(f"translate: expected a final '.', got {got!r} in {sentence!r}")
    return _Sentence(subject, verb, object_, adverb, preposition, place)


def _parse_noun_phrase(words, i, sentence):
    _expect(words, i, _DETERMINERS, "a determiner", sentence)
    determiner, adjective = words[i], None
    if i + 1 < len(words) and words[i + 1] in _ADJECTIVES:
        adjective, i = words[i + 1], i + 1
    _expect(words, i + 1, _NOUN_FORMS, "a noun", sentence)
    noun, plural = _NOUN_FORMS[words[i + 1]]
    if determiner != "the" and plural != (determiner == "some"):
        raise ValueError(
            f"translate: {determiner!r} cannot precede {words[i + 1]!r} in {sentence!r}"
        )
    return _NounPhrase(determiner == "the", adjective, noun, plural), i + 2


def _expect(words, i, allowed, what, sentence):
    if i >= len(words) or words[i] not in allowed:
        got = repr(words[i]) if i < len(words) else "the end"
        raise ValueError(f"translate: expected {what} at word {i + 1}, got {got} in {sentence!r}")


def _english(sentence):
    plural = sentence.subject.plural
    verb = sentence.verb if plural else _VERBS[sentence.verb][0]
    words = [*_english_noun_phrase(sentence.subject), verb]
    words += _english_noun_phrase(sentence.object)
    if sentence.adverb:
        words.append(sentence.adverb)
    if sentence.preposition:
        words += [sentence.preposition, *_english_noun_phrase(sentence.place)]
    return " ".join(words + ["."])


def _english_noun_phrase(phrase):
    determiner = "the" if phrase.definite else ("some" if phrase.plural else "a")
    adjective = [phrase.adjective] if phrase.adjective else []
    return [determiner, *adjective, phrase.noun + ("s" if phrase.plural else "")]


def _toy(sentence):
    words = [*_toy_noun_phrase(sentence.subject), *_toy_noun_phrase(sentence.object)]
    if sentence.adverb:
        words.append(_ADVERBS[sentence.adverb])
    if sentence.preposition:
        postposition = _PREPOSITIONS[sentence.preposition]
        words += [*_toy_noun_phrase(sentence.place), postposition]
    verb = _VERBS[sentence.verb][1] + _VERB_ENDINGS[sentence.subject.plural]
    return " ".join(words + [verb, "."])


def _toy_noun_phrase(phrase):
    stem, gender = _NOUNS[phrase.noun]
    ending = _ENDINGS[gender, phrase.plural]
    noun = stem + (_PLURAL_SUFFIX if phrase.plural else "")
    adjective = [_ADJECTIVES[phrase.adjective] + ending] if phrase.adjective else []
    return [("k" if phrase.definite else "s") + ending, noun, *adjective]


def _pluralized(sentence):
    return _english(sentence._replace(subject=sentence.subject._replace(plural=True)))


_TARGETS = {
    "translate": _toy,
    "plural": _pluralized,
    "subject": lambda sentence: " ".join(_english_noun_phrase(sentence.subject)),
}


def _sentences(rng, singular_subject=False):
    """Yields random sentences of the grammar, drawing 15 uniforms per sentence."""
    nouns, adjectives, verbs = list(_NOUNS), list(_ADJECTIVES), list(_VERBS)
    adverbs, prepositions = list(_ADVERBS), list(_PREPOSITIONS)

    def pick(options, u):
        return options[int(u * len(options))]

    def noun_phrase(u, plural=None):
        # An adjective half of the time: u[2] spreads over twice as many slots.
        slot = int(u[2] * 2 * len(adjectives))
        adjective = adjectives[slot] if slot < len(adjectives) else None
        plural = bool(u[1] < 0.5) if plural is None else plural
        return _NounPhrase(bool(u[0] < 0.5), adjective, pick(nouns, u[3]), plural)

    while True:
        u = rng.random(15).tolist()
        modifier = int(u[9] * 3)  # None, an adverb or a place; a third of the time each
        yield _Sentence(
            subject=noun_phrase(u[0:4], plural=False if singular_subject else None),
            verb=pick(verbs, u[4]),
            object=noun_phrase(u[5:9]),
            adverb=pick(adverbs, u[10]) if modifier == 1 else None,
            preposition=pick(prepositions, u[10]) if modifier == 2 else None,
            place=noun_phrase(u[11:15]) if modifier == 2 else None,
        )


@functools.lru_cache(maxsize=16)
def _held_out_sources(task, seed):
    examples = text_to_text_examples(task, HELD_OUT_VALIDATION, seed, "validation")
    return frozenset(source for source, _ in examples)


def _rng(seed, task, split):
    stream = [*TEXT_TO_TEXT_TASKS, "pretraining"].index(task)
    return np.random.default_rng([seed, stream, SPLITS.index(split)])


def _check_count(count, name):
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {count!r}")


def check_mixture(mixture):
    """Raises a ValueError for unknown tasks or bad rates in `data.mixture`."""
    if mixture is None:
        return
    for task, rate in mixture.items():
        if task not in TEXT_TO_TEXT_TASKS:
            raise ValueError(
                f"data.mixture: unknown built-in task {task!r}; choose from "
                f"{list(TEXT_TO_TEXT_TASKS)}"
            )
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate < 0:
            raise ValueError(f"data.mixture.{task}: the rate must be a number >= 0, got {rate!r}")
    if not any(mixture.values()):
        raise ValueError("data.mixture: at least one rate must be > 0")
