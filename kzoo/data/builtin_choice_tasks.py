"""Two multiple-choice tasks generated from the built-in grammar, for `kzoo evaluate
--tasks builtin:NAME`: what a language model of the built-in corpus has learnt,
scored zero- and few-shot.

- `grammar` (which continuation is grammatical): the context is the start of a
  sentence of the chain, the choices its true rest and the rest corrupted
  (adjacent words of different categories swapped, or a word replaced by one of
  another category) until the whole holds a category bigram the grammar never
  produces. 2 choices.
- `completion` (which word completes the sentence): the context is the start of a
  sentence, the choices the word that follows it and 3 words of the same category
  that never follow the context's last symbol in the chain. 4 choices.

Examples are deterministic in `seed` and split (sentences of chain paths seeded by
`(seed, task, split)`, never those `kzoo.data.builtin_tasks` or the pretraining
text use), and the correct choice's position is uniform.
"""

import functools

import numpy as np

from kzoo.data.builtin_corpus import PUNCTUATION, default_corpus
from kzoo.data.builtin_tasks import pretraining_documents, ungrammatical_positions
from kzoo.data.choice_tasks import BUILTIN_PREFIX, ChoiceExample, ChoiceTask, read_choice_task

BUILTIN_CHOICE_TASKS = ("grammar", "completion")
NUM_TRAIN = 32
NUM_VALIDATION = 200
_COMPLETION_CHOICES = 4
_MAX_SYMBOLS = 16  # Short sentences: 5 shots still fit a small model's context.


def builtin_choice_task(name, num_train=NUM_TRAIN, num_validation=NUM_VALIDATION, seed=0):
    """Returns the built-in multiple-choice task `name` (`grammar` or `completion`).

    Args:
        name: One of `BUILTIN_CHOICE_TASKS`.
        num_train: Examples in the few-shot pool.
        num_validation: Examples evaluated.
        seed: Fixes the examples.

    Example:
    >>> task = builtin_choice_task("grammar", num_train=1, num_validation=2)
    >>> example = task.train[0]
    >>> example.context, example.choices, example.label
    ('zo sudulun', ('natur.', 'kulava.'), 1)
    """
    if name not in BUILTIN_CHOICE_TASKS:
        raise ValueError(
            f"tasks: unknown built-in task {BUILTIN_PREFIX}{name}; built-in tasks are "
            + ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_CHOICE_TASKS)
        )
    for count, key in ((num_train, "num_train"), (num_validation, "num_validation")):
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"{key} must be an integer >= 0, got {count!r}")
    make = _grammar_example if name == "grammar" else _completion_example
    splits = {}
    for split, count in (("train", num_train), ("validation", num_validation)):
        rng = np.random.default_rng([seed, 100 + BUILTIN_CHOICE_TASKS.index(name), len(splits)])
        sentences, examples = _sentences(int(rng.integers(2**31))), []
        while len(examples) < count:
            example = make(next(sentences), rng)
            if example is not None:  # None: the sentence cannot make one.
                examples.append(example)
        splits[split] = tuple(examples)
    return ChoiceTask(name, splits["validation"], splits["train"], BUILTIN_PREFIX + name)


def load_choice_task(spec):
    """Returns the `ChoiceTask` that `spec` names: a JSON Lines file or `builtin:NAME`.

    Example:
    >>> task = load_choice_task("builtin:completion")
    >>> task.name, len(task.examples[0].choices)
    ('completion', 4)
    """
    if spec.startswith(BUILTIN_PREFIX):
        return builtin_choice_task(spec[len(BUILTIN_PREFIX) :])
    return read_choice_task(spec)


def _grammar_example(symbols, rng):
    corpus = _corpus()
    cut = _cut(symbols, rng)
    rest = symbols[cut:]
    words = [i for i, s in enumerate(rest) if s not in PUNCTUATION]
    swappable = [
        i
        for i in words
        if i + 1 in words and corpus.category_of(rest[i]) != corpus.category_of(rest[i + 1])
    ]
    while True:
        corrupted = list(rest)
        if swappable and rng.random() < 0.5:
            i = swappable[int(rng.integers(len(swappable)))]
            corrupted[i], corrupted[i + 1] = corrupted[i + 1], corrupted[i]
        else:
            i = words[int(rng.integers(len(words)))]
            others = _other_category_words(corpus.category_of(rest[i]))
            corrupted[i] = others[int(rng.integers(len(others)))]
        if any(p >= cut for p in ungrammatical_positions(symbols[:cut] + corrupted)):
            break
    return _example(symbols[:cut], [corpus.render(rest), corpus.render(corrupted)], rng)


def _completion_example(symbols, rng):
    cut = _cut(symbols, rng, lambda i: len(_distractors(symbols, i)) >= _COMPLETION_CHOICES - 1)
    if cut is None:
        return None
    word, never = symbols[cut], _distractors(symbols, cut)
    picked = rng.choice(len(never), _COMPLETION_CHOICES - 1, replace=False)
    return _example(symbols[:cut], [word] + [never[i] for i in picked], rng)


def _example(context_symbols, choices, rng):
    """Shuffles `choices` (the correct one first) into a `ChoiceExample`."""
    order = rng.permutation(len(choices))
    shuffled = tuple(choices[i] for i in order)
    return ChoiceExample(_corpus().render(context_symbols), shuffled, int(np.argmin(order)))


def _distractors(symbols, position):
    """Words of the category of `symbols[position]` that never follow the symbol
    before it."""
    return _never_following(symbols[position - 1], _corpus().category_of(symbols[position]))


def _cut(symbols, rng, allowed=lambda position: True):
    """A position after the first two symbols where a word starts (so the context
    and `" " + rest` render the sentence) that is `allowed`; None if there is none."""
    cuts = [i for i in range(2, len(symbols)) if symbols[i] not in PUNCTUATION and allowed(i)]
    if not cuts:
        return None
    return cuts[int(rng.integers(len(cuts)))]


def _sentences(seed):
    """Sentences of one chain path with 4 to `_MAX_SYMBOLS` symbols, as symbol lists."""
    corpus, done = _corpus(), 0
    while True:
        documents = pretraining_documents(done + 64, seed)
        for document in documents[done:]:
            for sentence in document:
                symbols = corpus.parse(sentence)
                if 4 <= len(symbols) <= _MAX_SYMBOLS and len(_words(symbols[2:])) >= 1:
                    yield symbols
        done = len(documents)


def _words(symbols):
    return [s for s in symbols if s not in PUNCTUATION]


@functools.cache
def _other_category_words(category):
    corpus = _corpus()
    return [w for w in corpus.vocabulary if corpus.category_of(w) != category]


@functools.cache
def _never_following(previous, category):
    """Words of `category` with zero probability after the symbol `previous`."""
    corpus = _corpus()
    symbols, matrix = corpus.symbols, corpus.transition_matrix
    row = matrix[symbols.index(previous)]
    return [
        w
        for w in corpus.vocabulary
        if corpus.category_of(w) == category and row[symbols.index(w)] == 0
    ]


@functools.cache
def _corpus():
    return default_corpus()
