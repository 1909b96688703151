"""NSP pairs: label balance, true continuations, lengths, packing."""

import numpy as np

from kzoo.data.next_sentence_pairs import IS_NEXT, RANDOM_NEXT, pack_pairs, sentence_pairs


def _documents(count=60, sentences=8, seed=0):
    rng = np.random.default_rng(seed)
    # Token = 1000 * document + position: every token says where it comes from.
    documents = []
    for d in range(count):
        position, doc = 0, []
        for _ in range(sentences):
            length = int(rng.integers(2, 12))
            doc.append([1000 * d + position + i for i in range(length)])
            position += length
        documents.append(doc)
    return documents


def test_half_the_pairs_are_true_continuations():
    pairs = sentence_pairs(_documents(200), 40, np.random.default_rng(1))
    rate = np.mean([label == RANDOM_NEXT for _, _, label in pairs])
    assert len(pairs) > 400 and abs(rate - 0.5) < 0.06, (len(pairs), rate)


def test_next_pairs_are_contiguous_and_random_pairs_cross_documents():
    for a, b, label in sentence_pairs(_documents(), 40, np.random.default_rng(2)):
        assert a and b and len(a) + len(b) <= 40
        assert np.all(np.diff(a) == 1) and np.all(np.diff(b) == 1)  # spans of text
        if label == IS_NEXT:
            assert b[0] == a[-1] + 1 or (b[0] > a[-1] and b[0] // 1000 == a[-1] // 1000)
            assert b[0] // 1000 == a[0] // 1000
        else:
            assert b[0] // 1000 != a[0] // 1000


def test_one_sentence_documents_still_make_next_pairs():
    documents = [[[1000 * d + i for i in range(6)]] for d in range(50)]
    pairs = sentence_pairs(documents, 20, np.random.default_rng(3))
    assert {label for _, _, label in pairs} == {IS_NEXT, RANDOM_NEXT}


def test_pack_pairs_layout():
    packed = pack_pairs([([7, 8], [9, 10, 11], RANDOM_NEXT)], 10, cls_id=2, sep_id=3)
    assert packed["token_ids"].tolist() == [[2, 7, 8, 3, 9, 10, 11, 3, 0, 0]]
    assert packed["segment_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 0, 0]]
    assert packed["padding_mask"].tolist() == [[1] * 8 + [0, 0]]
    assert packed["nsp_labels"].tolist() == [RANDOM_NEXT]
