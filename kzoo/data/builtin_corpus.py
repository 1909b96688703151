"""The built-in corpus: generated text whose true entropy rate is known exactly.

The text comes from a first-order Markov chain over *symbols*: pseudo-words built from
syllables ("molan", "teriv"), the punctuation symbols "," and ".", and an end-of-document
symbol. Words belong to categories (determiner, adjective, noun, verb, adverb) whose
allowed transitions encode a small sentence grammar; within a category each word has its
own sparse, Zipf-skewed successors, so the categories alone do not predict the next word.
The grammar seed fixes vocabulary and probabilities; no text is copied from anywhere.
The chain is irreducible and aperiodic, so its entropy rate is exact:
`H = -sum_i pi_i sum_j P_ij log P_ij`, with `pi` the stationary distribution.

Rendering: single spaces between words and between sentences, punctuation attached to
the previous word ("ta molan teriv, ki sato."), so a document is one line over
`ALPHABET`. The end-of-document symbol is not rendered: each document is its own string
(a later pipeline appends an end token). Each document starts where the chain leaves
the end-of-document state, so a stream of documents is one chain path; `parse` inverts
the rendering.

Bits per word: total model NLL in bits over the held-out documents (tokens including each
document's end token) divided by the number of chain symbols (including end-of-document
symbols), i.e. `num_symbols(documents)`. Documents are renewal cycles of the chain, so a
perfect model's bits per word converges to `entropy_rate("bits")`.

Example:

>>> corpus = default_corpus()
>>> documents = corpus.documents(3, seed=0)
>>> corpus.num_symbols(documents) == sum(len(corpus.parse(d)) + 1 for d in documents)
True
>>> round(corpus.entropy_rate("nats"), 4)
1.6669
"""

import bisect
import functools
import math
import os

import numpy as np

from kzoo import staged_files

END_OF_DOCUMENT = "<eod>"
PUNCTUATION = (",", ".")
# Every character a rendered document can contain (no newline: one document, one line).
ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz ,.")

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"
_FINALS = "lnrsv"
# Word categories: (number of words, allowed syllable counts).
_WORD_CATEGORIES = {
    "determiner": (12, (1,)),
    "adjective": (48, (2, 3)),
    "noun": (96, (2, 3)),
    "verb": (60, (2, 3)),
    "adverb": (20, (3,)),
}
_END_PROBABILITY = 0.08  # P(end of document | "."): about 12 sentences per document.
# The sentence grammar: successor categories of each category, with base probabilities.
_GRAMMAR = {
    "determiner": {"adjective": 0.35, "noun": 0.65},
    "adjective": {"adjective": 0.2, "noun": 0.8},
    "noun": {"verb": 0.6, ",": 0.15, ".": 0.25},
    "verb": {"determiner": 0.5, "adverb": 0.2, ".": 0.3},
    "adverb": {"determiner": 0.3, ",": 0.2, ".": 0.5},
    ",": {"determiner": 1.0},
    ".": {"determiner": 1.0 - _END_PROBABILITY, END_OF_DOCUMENT: _END_PROBABILITY},
    END_OF_DOCUMENT: {"determiner": 1.0},
}
_CONCENTRATION = 20.0  # Dirichlet concentration of a word's own category mix.
_FAN_OUT = (2, 4)  # Successor words per (word, successor category), inclusive range.
_ZIPF_EXPONENT = 1.0
_SAMPLE_CHUNK = 4096


def default_corpus():
    """Returns the built-in corpus, `BuiltinCorpus(seed=0)`.

    Example:

    >>> len(default_corpus().vocabulary)
    236
    """
    return BuiltinCorpus(seed=0)


class BuiltinCorpus:
    """A Markov-grammar text source with an exactly computable entropy rate.

    Args:
        seed: int, fixes the grammar (vocabulary and transition probabilities). Seed 0 is
            the project's built-in corpus.

    Example:

    >>> corpus = BuiltinCorpus(seed=0)
    >>> text = corpus.documents(1, seed=0)[0]
    >>> corpus.render(corpus.parse(text)) == text
    True
    >>> round(corpus.entropy_rate("bits") / corpus.entropy_rate("nats"), 4)
    1.4427
    """

    def __init__(self, seed=0):
        self.seed = seed
        rng = np.random.default_rng(seed)
        self._categories = _make_vocabulary(rng)
        self._symbols = [s for members in self._categories.values() for s in members]
        self._index = {symbol: i for i, symbol in enumerate(self._symbols)}
        self._category = {s: c for c, members in self._categories.items() for s in members}
        self._end = self._index[END_OF_DOCUMENT]
        for _ in range(100):
            matrix = self._make_transition_matrix(rng)
            if _is_primitive(matrix):
                break
        else:
            raise RuntimeError(f"BuiltinCorpus: seed={seed!r} gives no ergodic grammar")
        self._matrix = matrix
        self._stationary = _stationary_distribution(matrix)
        self._successors = [np.flatnonzero(row).tolist() for row in matrix]
        # Normalised so the last entry is exactly 1: every uniform in [0, 1) lands.
        cumulative = [np.cumsum(row[row > 0]) for row in matrix]
        self._cdfs = [(c / c[-1]).tolist() for c in cumulative]

    @property
    def symbols(self):
        """All chain states: the words, then ",", "." and `END_OF_DOCUMENT`."""
        return list(self._symbols)

    @property
    def vocabulary(self):
        """The word symbols (no punctuation, no end-of-document)."""
        return [s for s in self._symbols if s not in PUNCTUATION and s != END_OF_DOCUMENT]

    def category_of(self, symbol):
        """Returns the grammatical category of a symbol.

        A word's category is `"determiner"`, `"adjective"`, `"noun"`, `"verb"` or
        `"adverb"`; punctuation and `END_OF_DOCUMENT` are their own category.

        Example:

        >>> corpus = default_corpus()
        >>> [corpus.category_of(s) for s in corpus.parse("zo kufe mosan.")]
        ['determiner', 'noun', 'verb', '.']
        """
        if symbol not in self._category:
            raise ValueError(
                f"category_of: {symbol!r} is not a symbol of BuiltinCorpus(seed={self.seed})"
            )
        return self._category[symbol]

    @property
    def transition_matrix(self):
        """`P[i, j] = P(next = symbols[j] | current = symbols[i])`, rows sum to 1."""
        return self._matrix.copy()

    @property
    def stationary_distribution(self):
        """The unique `pi` with `pi @ P == pi` and `sum(pi) == 1`."""
        return self._stationary.copy()

    @property
    def mean_document_symbols(self):
        """Expected symbols per document, its end-of-document symbol included."""
        return 1.0 / self._stationary[self._end]

    def entropy_rate(self, unit="nats"):
        """Returns the exact entropy rate per chain symbol in `"nats"` or `"bits"`."""
        if unit not in ("nats", "bits"):
            raise ValueError(f"entropy_rate: unit must be 'nats' or 'bits', got {unit!r}")
        logs = np.log(self._matrix, where=self._matrix > 0, out=np.zeros_like(self._matrix))
        nats = float(-self._stationary @ (self._matrix * logs).sum(axis=1))
        return nats if unit == "nats" else nats / math.log(2.0)

    def sample_path(self, num_symbols, seed=0):
        """Returns the first `num_symbols` state ids after an end-of-document state.

        `documents(n, seed)` renders a prefix of this same path.
        """
        walk = self._walk(seed)
        return np.fromiter((next(walk) for _ in range(num_symbols)), np.int64, num_symbols)

    def documents(self, num_documents, seed=0):
        """Returns `num_documents` rendered documents of one chain path fixed by `seed`."""
        if num_documents < 0:
            raise ValueError(f"documents: num_documents must be >= 0, got {num_documents!r}")
        documents, current = [], []
        walk = self._walk(seed)
        while len(documents) < num_documents:
            state = next(walk)
            if state == self._end:
                documents.append(self.render(current))
                current = []
            else:
                current.append(self._symbols[state])
        return documents

    def render(self, symbols):
        """Renders a document's symbols (no end-of-document) as text."""
        text = " ".join(symbols)
        return text.replace(" ,", ",").replace(" .", ".")  # Words hold no punctuation.

    def parse(self, text):
        """Inverts `render`: returns the symbols of one document's text.

        Raises:
            ValueError: naming the token, if `text` is not a rendering of this vocabulary.
        """
        symbols = []
        for piece in text.split(" "):
            word = piece.rstrip("".join(PUNCTUATION))
            mark = piece[len(word) :]
            if word not in self._index or word in PUNCTUATION:
                raise ValueError(
                    f"parse: token {word!r} (in {piece!r}) is not a word of "
                    f"BuiltinCorpus(seed={self.seed})"
                )
            if len(mark) > 1:
                raise ValueError(f"parse: token {piece!r} has more than one punctuation mark")
            symbols.extend([word, mark] if mark else [word])
        return symbols

    def num_symbols(self, documents):
        """Returns the chain symbols in `documents`, one end-of-document per document.

        Raises:
            ValueError: naming the offending token, if a document is not a possible
                output of this corpus (unknown word or impossible transition).
        """
        if isinstance(documents, str):
            raise TypeError("num_symbols: documents must be a list of strings, got a str")
        total = 0
        for number, text in enumerate(documents):
            ids = [self._end, *(self._index[s] for s in self.parse(text)), self._end]
            for previous, state in zip(ids, ids[1:]):
                if self._matrix[previous, state] == 0:
                    raise ValueError(
                        f"num_symbols: document {number}: token {self._symbols[state]!r} "
                        f"cannot follow {self._symbols[previous]!r} in "
                        f"BuiltinCorpus(seed={self.seed})"
                    )
            total += len(ids) - 1
        return total

    def write(self, directory, num_train=2000, num_validation=200, seed=0):
        """Writes one document per file to `directory/train/` and `directory/validation/`.

        Both splits are consecutive documents of one chain path (validation continues
        after train). Each split is written into a temporary sibling directory, then
        renamed into place. Files hold the document text exactly, with no newline.

        Returns:
            dict with `"train"` and `"validation"` glob patterns, `"entropy_rate_nats"`,
            `"train_symbols"` and `"validation_symbols"`.

        Raises:
            FileExistsError: naming the path, if a target exists and is not empty.
        """
        counts = {"train": num_train, "validation": num_validation}
        targets = {name: os.path.join(directory, name) for name in counts}
        for name, path in targets.items():
            if counts[name] < 1:
                raise ValueError(f"write: num_{name} must be >= 1, got {counts[name]!r}")
            if os.path.exists(path) and not (os.path.isdir(path) and not os.listdir(path)):
                raise FileExistsError(f"write: {path!r} exists and is not empty; remove it")
        documents = self.documents(num_train + num_validation, seed=seed)
        splits = {"train": documents[:num_train], "validation": documents[num_train:]}
        os.makedirs(directory, exist_ok=True)
        width = max(5, len(str(max(counts.values()) - 1)))

        def write_documents(documents, temporary):
            for number, text in enumerate(documents):
                path = os.path.join(temporary, f"doc_{number:0{width}d}.txt")
                with open(path, "w", encoding="ascii") as f:
                    f.write(text)

        for name, split in splits.items():
            staged_files.atomic_directory(targets[name], functools.partial(write_documents, split))
        return {
            "train": os.path.join(targets["train"], "*.txt"),
            "validation": os.path.join(targets["validation"], "*.txt"),
            "entropy_rate_nats": self.entropy_rate("nats"),
            "train_symbols": self.num_symbols(splits["train"]),
            "validation_symbols": self.num_symbols(splits["validation"]),
        }

    def _walk(self, seed):
        """Yields state ids of the chain path that starts after an end of document."""
        rng = np.random.default_rng(seed)
        state = self._end
        while True:
            for uniform in rng.random(_SAMPLE_CHUNK).tolist():
                successors = self._successors[state]
                state = successors[bisect.bisect_right(self._cdfs[state], uniform)]
                yield state

    def _make_transition_matrix(self, rng):
        """Draws word-specific sparse, Zipf-skewed rows that respect `_GRAMMAR`."""
        # Successors are taken from a cycling stream of permutations, so every word is
        # some word's successor.
        streams = {name: [] for name in self._categories}
        matrix = np.zeros((len(self._symbols),) * 2)
        for name, members in self._categories.items():
            base = _GRAMMAR[name]
            for symbol in members:
                mix = np.array(list(base.values()))
                if name in _WORD_CATEGORIES and len(mix) > 1:  # The word's own mix.
                    mix = rng.dirichlet(_CONCENTRATION * mix)
                row = matrix[self._index[symbol]]
                for target, weight in zip(base, mix):
                    candidates = self._categories[target]
                    if len(candidates) == 1 or name not in _WORD_CATEGORIES:
                        chosen = list(rng.permutation(candidates))
                    else:
                        count = int(rng.integers(_FAN_OUT[0], _FAN_OUT[1] + 1))
                        stream = streams[target]
                        while len(stream) < count:
                            stream.extend(rng.permutation(candidates).tolist())
                        chosen = list(dict.fromkeys(stream[:count]))
                        del stream[:count]
                    zipf = 1.0 / np.arange(1, len(chosen) + 1) ** _ZIPF_EXPONENT
                    for successor, p in zip(chosen, weight * zipf / zipf.sum()):
                        row[self._index[successor]] += p
        return matrix


def _make_vocabulary(rng):
    """Returns {category: symbols}: unique pseudo-words, then punctuation and end."""
    seen, categories = set(), {}
    for name, (size, syllable_counts) in _WORD_CATEGORIES.items():
        words = []
        while len(words) < size:
            syllables = [
                rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS))
                for _ in range(rng.choice(syllable_counts))
            ]
            if len(syllables) > 1 and rng.random() < 0.5:
                syllables[-1] += rng.choice(list(_FINALS))
            word = "".join(syllables)
            if word not in seen:
                seen.add(word)
                words.append(word)
        categories[name] = words
    for symbol in (*PUNCTUATION, END_OF_DOCUMENT):
        categories[symbol] = [symbol]
    return categories


def _is_primitive(matrix):
    """True if some power of `matrix` is all positive: irreducible and aperiodic."""
    reach = (matrix > 0).astype(np.float64)
    # Wielandt: if any power is positive, the power (n - 1)^2 + 1 is.
    for _ in range(math.ceil(math.log2((len(matrix) - 1) ** 2 + 1))):
        reach = np.minimum(reach @ reach, 1.0)
    return bool(reach.all())


def _stationary_distribution(matrix):
    """Solves `pi (P - I) = 0`, `sum(pi) = 1` exactly (one equation is redundant)."""
    system = matrix.T - np.eye(len(matrix))
    system[-1] = 1.0
    target = np.zeros(len(matrix))
    target[-1] = 1.0
    return np.linalg.solve(system, target)
