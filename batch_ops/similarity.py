"""Zero-token duplicate candidates: top-K cosine by sparse matrix products (numpy, scipy).

Text: the title, Context, Description, Affected Files and acceptance criteria (what the model
judging a pair sees), and the verification commands (``ticket_text``). Lower-cased words and
numbers, English stop words and ticket boilerplate out, a light suffix stemmer so that "invoices"
meets "invoice". Never all pairs.

Each ticket gets two L2-normalised TF-IDF vectors (smoothed IDF), built with numpy a chunk of
tickets at a time: a *retrieval* vector, its ``vector_terms`` (24) heaviest terms weighted
sqrt(tf)·idf, and a *scoring* vector, its ``score_terms`` (48) heaviest weighted log(1 + tf)·idf.
Retrieval is a sparse product, a block of tickets' retrieval vectors (a few hundred to 4,096 rows,
so that a block's product holds about ``_BLOCK_NNZ`` values) times an inverted index (term x
ticket, CSR) in which every ticket is listed under its ``m`` heaviest terms only. That partial
cosine picks each ticket's ``pool`` (100) best others (``argpartition`` per row); those are ranked
by the cosine of the scoring vectors, and the ticket keeps its ``per_ticket`` best above
``min_score``. The pair list is the union, each pair once, best first, with the shared terms
whose weight products are largest.

The product costs sum over terms of (tickets whose retrieval vector holds it) x (tickets indexed
under it): quadratic in the common terms. ``m`` is the largest of 24, 16, 12, 10, 8, 6 whose cost
fits ``work_budget`` (2e9 multiply-adds): at 10,000 tickets it is 24, so the retrieval score is
the exact cosine over every ticket; at 100,000 it is 12 (the exact product would be 5.7e9 and
each ticket would meet 40 % of the others). A reworded twin shares its rare, heavy terms, so it
is still met through the heaviest ones. This replaced pair-of-terms keys with a posting cap,
whose pool by key count lost about one planted pair in ten at 100,000 tickets.

Why these weights (``bench/duplicates_recall.md`` has the figures): a reworded duplicate keeps
talking about the same things (nouns, numbers, names, files), so repetition is signal, but with
raw tf a ticket's subject, said ten times, outweighs everything else, and in a large backlog
hundreds of tickets share a subject. Exact top-5 recall over all 100,000 tickets (no retrieval
step at all) is 0.956 with 24-term sqrt(tf) vectors, 0.980 with 48 terms, 0.982 untruncated and
0.988 with 48-term log(1 + tf) vectors, and 0.996 (top 10: 1.000) once the verification commands
are in the text: the longer vectors carry the details (customer, edition, numbers) and the
commands the module path that tell a twin from the same topic in another edition. Longer vectors
cost too much to retrieve with (the product doubles), but scoring a pool of 100 with them is
cheap. With the retrieval step the whole reaches 0.994 at 100,000 tickets, 1.000 at 10,000.
"""

from __future__ import annotations

import importlib
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import scipy.sparse as sp  # type: ignore[import-untyped]
else:

    class _OnFirstUse:
        """A module imported when first used. Every command loads this module (through the phase
        registry), but only the candidate step needs numpy and scipy: imported eagerly they cost
        each process about 30 MB of memory (figure 1's bar is 150 MB) and half again as many
        objects for the collector to walk (measured: 34,000 -> 52,000)."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            return getattr(importlib.import_module(self._name), attr)

    np = _OnFirstUse("numpy")
    sp = _OnFirstUse("scipy.sparse")

from batch_ops.backlog import Ticket, gc_paused

_WORD = re.compile(r"[a-z0-9]+")
_AC_PREFIX = re.compile(r"^\s*[-*]\s*\[[ xX]\]\s*(?:AC-\d+[a-z]?\s*:)?\s*", re.MULTILINE)

# findall over one string keeps the list readable (and ruff from unrolling it into a literal).
STOP_WORDS = frozenset(
    re.findall(
        r"\S+",
        """
        a about above after again against all also am an and any are as at be because been before being
        below between both but by can cannot could did do does doing down during each either else even
        every few for from further get gets got had has have having he her here hers him his how however
        i if in into is it its itself just let like may me might more most much must my no nor not now of
        off on once one only onto or other our ours out over own per same shall she should so some such
        than that the their theirs them then there these they this those through thus to too under until
        up upon us very via was we were what when where whether which while who whom whose why will with
        within without would yet you your yours
        ac acceptance criteria criterion description ticket tickets todo tbd etc eg ie
        """,
    )
)


@dataclass(frozen=True, slots=True)
class Candidate:
    a: str  # the smaller id of the pair
    b: str
    score: float
    shared: tuple[str, ...] = ()  # the heaviest shared terms, for people reading the list


@dataclass
class Params:
    per_ticket: int = 5
    min_score: float = 0.0
    vector_terms: int = 24  # terms per retrieval vector (the heaviest, sqrt(tf) weights)
    pool: int = 100  # candidates per ticket, by the retrieval product, that the scoring vectors rank
    index_terms: int = 0  # 0: chosen from ``work_budget``; else the heaviest terms each ticket is indexed under
    score_terms: int = 48  # terms per scoring vector (log(1 + tf) weights)
    work_budget: float = 2.0e9  # multiply-adds the retrieval product may cost (see ``_index_depth``)


_STEM_CACHE: dict[str, str] = {}


def stem(word: str) -> str:
    """A deliberately light stemmer: plural and verb endings only, cached per distinct word."""
    hit = _STEM_CACHE.get(word)
    if hit is not None:
        return hit
    out = word
    if len(word) > 4 and word.endswith("ies"):
        out = word[:-3] + "y"
    elif len(word) > 5 and word.endswith("ing"):
        out = word[:-3]
    elif (len(word) > 4 and word.endswith("ed") and not word.endswith("eed")) or (
        len(word) > 3 and word.endswith("es") and word[-3] in "sxz"  # boxes, taxes, buzzes
    ):
        out = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        out = word[:-1]
    if len(_STEM_CACHE) < 500_000:
        _STEM_CACHE[word] = out
    return out


def tokens(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOP_WORDS and (len(w) > 1 or w.isdigit())]


def ticket_text(ticket: Ticket) -> str:
    """Title, Context, Description, Affected Files, the acceptance criteria (without their
    ``- [ ] AC-n:`` prefixes) and the verification commands. The commands name the directories the
    work touches, like Affected Files, and a ticket without that table usually still has them: at
    100,000 tickets they are what tells a twin from the same topic in another module (see the
    module docstring)."""
    criteria = "\n".join(_AC_PREFIX.sub("", line) for line in ticket.acceptance_criteria())
    commands = "\n".join(ticket.verification_commands())
    return (
        f"{ticket.title}\n{ticket.section('Context') or ''}\n{ticket.section('Description') or ''}\n"
        f"{ticket.section('Affected Files') or ''}\n{criteria}\n{commands}"
    )


_INDEX_DEPTHS = (24, 16, 12, 10, 8, 6)
_BLOCK_NNZ = 12_000_000  # retrieval products held at once (a block's rows times their hits)


@dataclass
class _Index:
    ids: list[str]
    vocab: list[str]
    vectors: sp.csr_matrix  # ticket x term, float32, L2-normalised, truncated to vector_terms
    depth: npt.NDArray[np.int32]  # each stored weight's rank within its ticket (0 = heaviest)
    scoring: sp.csr_matrix  # the vectors that rank a ticket's pool (``Params.score_terms``)


def _build_tokens(docs: Iterable[tuple[str, list[str]]], params: Params) -> _Index:
    """Two passes: (term id, count) pairs per ticket and document frequencies, then each ticket's
    truncated vector, computed with numpy a chunk of tickets at a time (no text is held)."""
    ids: list[str] = []
    term_id: dict[str, int] = {}
    setdefault = term_id.setdefault
    keys: array[int] = array("I")
    counts: array[int] = array("I")
    lens: array[int] = array("I")
    for doc_id, toks in docs:
        ids.append(doc_id)
        tf = Counter([setdefault(tok, len(term_id)) for tok in toks])
        keys.extend(tf.keys())
        counts.extend(tf.values())
        lens.append(len(tf))
    n, width = len(ids), len(term_id)
    terms = np.frombuffer(keys, dtype=np.uint32).astype(np.int32) if keys else np.zeros(0, np.int32)
    tfs = np.frombuffer(counts, dtype=np.uint32) if counts else np.zeros(0, np.uint32)
    sizes = np.frombuffer(lens, dtype=np.uint32).astype(np.int64) if lens else np.zeros(0, np.int64)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])
    df = np.bincount(terms, minlength=width)
    idf = np.log((n + 1) / (df + 1.0)) + 1.0
    vectors, depth = _vectors(terms, np.sqrt(tfs) * idf[terms], starts, params.vector_terms, width)
    # The pool is ranked by longer vectors with log(1 + tf): measured better than sqrt(tf) at 24
    # terms (see the module docstring), and too costly to retrieve with, but cheap to score a pool.
    scoring, _ = _vectors(terms, np.log1p(tfs.astype(np.float64)) * idf[terms], starts, params.score_terms, width)
    return _Index(ids=ids, vocab=list(term_id), vectors=vectors, depth=depth, scoring=scoring)


def _vectors(
    terms: npt.NDArray[np.int32],
    weights: npt.NDArray[np.float64],
    starts: npt.NDArray[np.int64],
    v: int,
    width: int,
) -> tuple[sp.csr_matrix, npt.NDArray[np.int32]]:
    """Each ticket's ``v`` heaviest terms, L2-normalised, as a CSR row (columns in term order), and
    each stored weight's rank within its ticket; a chunk of tickets at a time, so the temporaries
    stay small."""
    n = len(starts) - 1
    sizes = np.diff(starts)
    kept = np.minimum(sizes, v)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(kept, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    depth = np.empty(int(indptr[-1]), dtype=np.int32)
    chunk = 8192
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        a, b = int(starts[lo]), int(starts[hi])
        t, w = terms[a:b], weights[a:b]
        owner = np.repeat(np.arange(hi - lo), sizes[lo:hi])
        # Heaviest first within each ticket; the stable sort keeps first-seen order on ties.
        order = np.lexsort((-w, owner))
        rank = np.arange(b - a) - (starts[lo:hi] - a)[owner[order]]
        top = rank < v
        keep, kept_rank = order[top], rank[top]
        # Stored in term order within a ticket (canonical CSR), each with its weight rank.
        by_term = np.lexsort((t[keep], owner[keep]))
        keep, kept_rank = keep[by_term], kept_rank[by_term]
        kw = w[keep]
        norms = np.sqrt(np.bincount(owner[keep], weights=kw * kw, minlength=hi - lo))
        norms[norms == 0] = 1.0
        out = slice(int(indptr[lo]), int(indptr[hi]))
        indices[out] = t[keep]
        data[out] = kw / norms[owner[keep]]
        depth[out] = kept_rank
    return sp.csr_matrix((data, indices, indptr), shape=(n, max(1, width))), depth


def _index_depth(index: _Index, params: Params) -> int:
    """How many of its heaviest terms each ticket is indexed under for the retrieval product.

    The product's cost is the sum over terms of (tickets whose vector holds it) x (tickets indexed
    under it); common terms make it quadratic. Indexing every ticket under only its heaviest terms
    keeps that bounded while a reworded twin, which shares the rare, heavy terms, is still met; the
    pool it yields is then ranked by the scoring vectors."""
    if params.index_terms:
        return params.index_terms
    x = index.vectors
    width = x.shape[1]
    query_df = np.bincount(x.indices, minlength=width).astype(np.float64)
    for m in _INDEX_DEPTHS:
        if m > params.vector_terms:
            continue
        index_df = np.bincount(x.indices[index.depth < m], minlength=width)
        if float(query_df @ index_df) <= params.work_budget:
            return m
    return min(_INDEX_DEPTHS[-1], params.vector_terms)


def _candidate_pairs(docs: Iterable[tuple[str, list[str]]], params: Params) -> list[Candidate]:
    if params.per_ticket < 1:
        return []
    index = _build_tokens(docs, params)
    n = len(index.ids)
    if n < 2:
        return []
    x, z = index.vectors, index.scoring
    m = _index_depth(index, params)
    if m < params.vector_terms:
        # Copies: eliminate_zeros works in place and must not touch the vectors' arrays.
        indexed = sp.csr_matrix((x.data * (index.depth < m), x.indices.copy(), x.indptr.copy()), shape=x.shape)
        indexed.eliminate_zeros()
    else:
        indexed = x
    lookup = indexed.T.tocsr()  # term x ticket: the inverted index
    pool, k = max(params.pool, params.per_ticket), params.per_ticket
    # Rows per block from the expected hits per row, so a block's product stays near _BLOCK_NNZ.
    work = float(np.bincount(x.indices, minlength=x.shape[1]) @ np.bincount(indexed.indices, minlength=x.shape[1]))
    block = int(min(4096, max(64, _BLOCK_NNZ * n / max(work, 1.0))))
    firsts: list[npt.NDArray[np.int64]] = []
    seconds: list[npt.NDArray[np.int64]] = []
    scores: list[npt.NDArray[np.float32]] = []
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        hits = (x[lo:hi] @ lookup).tocsr()
        ip, cols, vals = hits.indptr, hits.indices, hits.data
        # One more than the pool: a ticket usually meets itself (dropped below, with numpy).
        room = pool + 1
        picked: list[npt.NDArray[np.int32]] = []
        sizes = np.minimum(np.diff(ip), room)
        for r in np.flatnonzero(sizes).tolist():
            a, b = int(ip[r]), int(ip[r + 1])
            if b - a > room:
                picked.append(cols[np.argpartition(vals[a:b], b - a - room)[b - a - room :] + a])
            else:
                picked.append(cols[a:b])
        del hits, ip, cols, vals
        if not picked:
            continue
        mine = np.repeat(np.arange(lo, hi, dtype=np.int64), sizes)
        other = np.concatenate(picked).astype(np.int64)
        not_self = mine != other
        mine, other = mine[not_self], other[not_self]
        # The scoring cosine (``score_terms``, log(1 + tf)), for the pool only.
        exact = np.asarray(z[mine].multiply(z[other]).sum(axis=1), dtype=np.float32).ravel()
        ok = exact > params.min_score
        mine, other, exact = mine[ok], other[ok], exact[ok]
        # Each ticket's k best: sort by (ticket, -score) and keep the first k of each run.
        order = np.lexsort((other, -exact, mine))
        mine, other, exact = mine[order], other[order], exact[order]
        first = np.searchsorted(mine, mine, side="left")
        top = (np.arange(len(mine)) - first) < k
        firsts.append(mine[top])
        seconds.append(other[top])
        scores.append(exact[top])
    if not firsts:
        return []
    i = np.concatenate(firsts)
    j = np.concatenate(seconds)
    s = np.concatenate(scores)
    lo_id, hi_id = np.minimum(i, j), np.maximum(i, j)
    # Each pair once (found from both sides, the scores agree up to float rounding: keep the best).
    order = np.lexsort((-s, hi_id, lo_id))
    lo_id, hi_id, s = lo_id[order], hi_id[order], s[order]
    first = np.ones(len(lo_id), dtype=bool)
    first[1:] = (lo_id[1:] != lo_id[:-1]) | (hi_id[1:] != hi_id[:-1])
    lo_id, hi_id, s = lo_id[first], hi_id[first], s[first]
    shared = _shared_terms(index, lo_id, hi_id)
    out: list[Candidate] = []
    ids, vocab = index.ids, index.vocab
    for p, (u, w_) in enumerate(zip(lo_id.tolist(), hi_id.tolist(), strict=True)):
        a, b = ids[u], ids[w_]
        pair = (a, b) if a <= b else (b, a)
        out.append(Candidate(pair[0], pair[1], round(float(s[p]), 4), tuple(vocab[t] for t in shared[p])))
    out.sort(key=lambda c: (-c.score, c.a, c.b))
    return out


def _shared_terms(index: _Index, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64], most: int = 6) -> list[list[int]]:
    """Per pair, the shared terms with the largest weight products, heaviest first."""
    result: list[list[int]] = [[] for _ in range(len(a))]
    x = index.scoring
    step = 200_000
    for lo in range(0, len(a), step):
        prod = x[a[lo : lo + step]].multiply(x[b[lo : lo + step]]).tocsr()
        prod.sort_indices()
        owner = np.repeat(np.arange(prod.shape[0]), np.diff(prod.indptr))
        order = np.lexsort((prod.indices, -prod.data, owner))
        owner, term = owner[order], prod.indices[order]
        first = np.searchsorted(owner, owner, side="left")
        keep = (np.arange(len(owner)) - first) < most
        for o, t in zip(owner[keep].tolist(), term[keep].tolist(), strict=True):
            result[lo + o].append(t)
    return result


def candidate_pairs(docs: Iterable[tuple[str, str]], params: Params | None = None) -> list[Candidate]:
    """Candidate duplicate pairs among ``docs`` (id, text), best first; each pair once. ``docs`` is read once."""
    return candidate_pairs_tokens(((doc_id, tokens(text)) for doc_id, text in docs), params)


def candidate_pairs_tokens(docs: Iterable[tuple[str, list[str]]], params: Params | None = None) -> list[Candidate]:
    """``candidate_pairs`` over tokenised ``docs`` (id, tokens)."""
    # The first pass builds a Counter per ticket and the term dictionary, and the end a Candidate
    # per pair, none in a reference cycle: the collector's passes over them would be pure cost.
    with gc_paused():
        return _candidate_pairs(docs, params or Params())


def ticket_candidates(tickets: Sequence[Ticket], params: Params | None = None) -> list[Candidate]:
    # A generator: each ticket's text exists only while it is tokenised.
    return candidate_pairs(((t.id, ticket_text(t)) for t in tickets), params)


def recall(found: Sequence[Candidate], planted: Sequence[tuple[str, str]]) -> float:
    if not planted:
        return 1.0
    have = {(c.a, c.b) for c in found}
    hit = sum(1 for a, b in planted if (min(a, b), max(a, b)) in have)
    return hit / len(planted)
