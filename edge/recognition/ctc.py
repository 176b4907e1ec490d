"""CTC likelihood of given strings: how strongly a recognizer's CTC matrix supports a reading.

`ctc_log_likelihood(probs, labels)` is the CTC forward algorithm (Graves et al. 2006) in log
space over a (T, C) probability matrix, column 0 the blank: log P(label sequence | matrix), the
sum over every frame alignment that collapses to the sequence. All sequences are scored in one
pass of T vectorized steps (padded to the longest), so rescoring a plate's handful of candidate
readings costs about a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FLOOR = 1e-8  # probabilities are clipped here (a zero would make a path impossible)
RESCALE = 8  # frames between rescalings of the forward variables (FLOOR**8 is far from underflow)


def ctc_log_likelihood(probs: np.ndarray, labels: Sequence[Sequence[int]]) -> np.ndarray:
    """log P(labels[k] | probs) for each label sequence under CTC, as a float64 array.

    `probs`: (T, C) per-frame probabilities, column 0 the blank; `labels`: sequences of column
    indices in 1..C-1. Each frame is one batched product with the sequences' transition matrices;
    the forward variables are rescaled to sum 1 every `RESCALE` frames (the logs of the scales
    are summed). A sequence
    the frames cannot hold (too long, or repeated glyphs without a frame between them) gets the
    clipped `FLOOR` paths' likelihood, or -inf where even that underflows.
    """
    p = np.maximum(np.asarray(probs, dtype=np.float64), FLOOR)
    t_len = p.shape[0]
    k = len(labels)
    if k == 0:
        return np.zeros(0)
    lengths = np.array([len(seq) for seq in labels])
    s_len = 2 * int(lengths.max(initial=0)) + 1
    ext = np.zeros((k, s_len), dtype=np.int64)  # blank, l1, blank, l2, ..., blank
    for i, seq in enumerate(labels):
        if len(seq):
            ext[i, 1 : 2 * len(seq) : 2] = seq
    valid = np.arange(s_len)[None, :] < (2 * lengths + 1)[:, None]
    # transitions s' -> s: stay, advance one state, or skip the blank between two different glyphs
    step = np.zeros((k, s_len, s_len))
    states = np.arange(s_len)
    step[:, states, states] = 1.0
    step[:, states[:-1], states[1:]] = 1.0
    step[:, states[1:-2:2], states[3::2]] = ext[:, 3::2] != ext[:, 1:-2:2]
    emit = (p[:, ext] * valid)[:, :, None, :]  # (T, K, 1, S); past a sequence's end: 0
    alpha = np.zeros((k, 1, s_len))
    alpha[:, :, :2] = emit[0, :, :, :2]
    log_scale = np.zeros(k)
    for t in range(t_len):
        if t:
            alpha = np.matmul(alpha, step) * emit[t]
        if t % RESCALE == RESCALE - 1 or t == t_len - 1:
            total = alpha.sum(axis=2)  # > 0: the all-blank path is always there
            alpha /= total[:, :, None]
            log_scale += np.log(total[:, 0])
    alpha = alpha[:, 0]
    rows = np.arange(k)
    last = 2 * lengths
    end = alpha[rows, last] + np.where(lengths > 0, alpha[rows, np.maximum(last - 1, 0)], 0.0)
    with np.errstate(divide="ignore"):
        return np.log(end) + log_scale


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
