"""CTC likelihood of given strings: how strongly a recognizer's CTC matrix supports a reading.

`ctc_log_likelihood(probs, labels)` is the CTC forward algorithm (Graves et al. 2006) in log
space over a (T, C) probability matrix, column 0 the blank: log P(label sequence | matrix), the
sum over every frame alignment that collapses to the sequence. All sequences are scored in one
pass of T vectorized steps (padded to the longest), so rescoring a plate's handful of candidate
readings costs well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FLOOR = 1e-8  # probabilities are clipped here before the log (a zero would make a path -inf)


def ctc_log_likelihood(probs: np.ndarray, labels: Sequence[Sequence[int]]) -> np.ndarray:
    """log P(labels[k] | probs) for each label sequence under CTC, as a float64 array.

    `probs`: (T, C) per-frame probabilities, column 0 the blank; `labels`: sequences of column
    indices in 1..C-1. A sequence the frames cannot hold (too long, or repeated glyphs without a
    frame between them) is impossible; its likelihood is then the clipped `FLOOR` path's.
    """
    logp = np.log(np.maximum(np.asarray(probs, dtype=np.float64), FLOOR))
    t_len = logp.shape[0]
    k = len(labels)
    if k == 0:
        return np.zeros(0)
    lengths = np.array([len(seq) for seq in labels])
    s_len = 2 * int(lengths.max(initial=0)) + 1
    ext = np.zeros((k, s_len), dtype=np.int64)  # blank, l1, blank, l2, ..., blank
    for i, seq in enumerate(labels):
        if len(seq):
            ext[i, 1 : 2 * len(seq) : 2] = seq
    states = np.arange(s_len)
    valid = states[None, :] < (2 * lengths + 1)[:, None]
    skip = np.zeros((k, s_len), dtype=bool)  # l_{i-1} -> l_i without the blank between
    skip[:, 3::2] = ext[:, 3::2] != ext[:, 1:-2:2]
    neg = -np.inf
    alpha = np.full((k, s_len), neg)
    alpha[:, 0] = logp[0, 0]
    if s_len > 1:
        alpha[:, 1] = np.where(lengths > 0, logp[0, ext[:, 1]], neg)
    alpha[~valid] = neg
    for t in range(1, t_len):
        prev1 = np.full((k, s_len), neg)
        prev1[:, 1:] = alpha[:, :-1]
        prev2 = np.full((k, s_len), neg)
        prev2[:, 2:] = alpha[:, :-2]
        prev2[~skip] = neg
        alpha = np.logaddexp(np.logaddexp(alpha, prev1), prev2) + logp[t, ext]
        alpha[~valid] = neg
    rows = np.arange(k)
    last = 2 * lengths
    return np.where(lengths > 0,
                    np.logaddexp(alpha[rows, last], alpha[rows, np.maximum(last - 1, 0)]),
                    alpha[rows, 0])


def text_log_likelihood(probs: np.ndarray, texts: Sequence[str], chars: str) -> np.ndarray:
    """Per-character CTC log-likelihood of each text on a (T, 1 + len(chars)) matrix whose
    column i + 1 is `chars[i]`: log P(text) / len(text), so readings of different lengths compare.
    A text with a character outside `chars` gets -inf."""
    index = {c: i + 1 for i, c in enumerate(chars)}
    known = [bool(t) and all(c in index for c in t) for t in texts]
    seqs = [[index[c] for c in t] if ok else [] for t, ok in zip(texts, known, strict=True)]
    ll = ctc_log_likelihood(probs, seqs)
    return np.array([v / len(t) if ok else -np.inf
                     for v, t, ok in zip(ll, texts, known, strict=True)])
