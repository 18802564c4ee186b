"""Zero-token duplicate candidates: sparse TF-IDF over the sections a duplicate shares.

Text: the title, Context, Description, Affected Files and acceptance criteria (what the model
judging a pair sees). Never all pairs. Each ticket is reduced to a signature, its
``signature_terms`` heaviest terms that some other ticket shares, and the signature to keys: every
pair of its terms. Tickets that share a key share two heavy terms, which is far more specific than
one shared word, so key posting lists stay short. Per ticket, the pairs of its ``query_terms``
heaviest terms are looked up (a few more than it is indexed under, so a reworded twin whose own
top terms came out in another order is still met), an inverted index over keys counts (in C, with
``Counter.update``) how many keys each other ticket shares; the ``pool`` best of those are
re-scored by the dot product of their TF-IDF vectors (L2-normalised, truncated to
``vector_terms``), and the ticket keeps its ``per_ticket`` best above ``min_score``. The pair list
is the union, each pair once. A ticket that finds fewer than ``pool`` others through pair keys
also looks through its single terms (this is what small backlogs rely on).

The work per ticket is bounded, so the whole stays near linear: a key or term whose posting list
is longer than ``max_postings`` is too common to tell tickets apart at this scale and is skipped.

Lower-cased words and numbers, English stop words and ticket boilerplate out, a light suffix
stemmer so that "invoices" meets "invoice". Term weights are sqrt(term frequency) times a smoothed
IDF. A reworded duplicate keeps talking about the same things (the same nouns, numbers, names and
files), so repetition is signal, but with raw tf a ticket's subject, repeated ten times, outweighs
everything else: in a large backlog hundreds of tickets share a subject, and the twin that also
shares the customer, the numbers and the details lost to them. On the labelled sets of
``bench/duplicates_recall.py`` (see its .md), sqrt(tf) with Context and Affected Files beat raw
tf and 1 + log tf, and the exact cosine of a planted pair is then usually, not always, the
highest its tickets have (at 100,000 tickets the generator's repeated topics make near-identical
tickets that are not labelled as pairs).
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import mul

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
    signature_terms: int = 7
    query_terms: int = 9  # a ticket looks up the pairs of this many of its terms (see ``_hits``)
    vector_terms: int = 24
    pool: int = 45
    max_postings: int = 0  # 0: chosen from the corpus size (see ``_postings_cap``)


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
    """Title, Context, Description, Affected Files and the acceptance criteria (without their
    ``- [ ] AC-n:`` prefixes): the sections the model judging a pair is shown."""
    criteria = "\n".join(_AC_PREFIX.sub("", line) for line in ticket.acceptance_criteria())
    return (
        f"{ticket.title}\n{ticket.section('Context') or ''}\n{ticket.section('Description') or ''}\n"
        f"{ticket.section('Affected Files') or ''}\n{criteria}"
    )


@dataclass
class _Index:
    ids: list[str]
    vocab: list[str] = field(default_factory=list)
    vectors: list[dict[int, int]] = field(default_factory=list)  # weights scaled to 1.._SCALE
    signatures: list[list[int]] = field(default_factory=list)
    queries: list[list[int]] = field(default_factory=list)
    pair_postings: dict[int, list[int]] = field(default_factory=dict)
    term_postings: dict[int, list[int]] = field(default_factory=dict)


_SCALE = 255
_SCALE2 = float(_SCALE * _SCALE)


def _postings_cap(n: int) -> int:
    # Grows with the corpus up to a ceiling, so the work per ticket stays bounded.
    return min(250, max(100, int(2.5 * math.sqrt(n))))


def _pair_keys(sig: list[int], width: int) -> list[int]:
    return [a * width + b if a < b else b * width + a for a, b in itertools.combinations(sig, 2)]


def _build(docs: Iterable[tuple[str, str]], params: Params) -> _Index:
    return _build_tokens(((doc_id, tokens(text)) for doc_id, text in docs), params)


def _build_tokens(docs: Iterable[tuple[str, list[str]]], params: Params) -> _Index:
    """Two passes that hold no text: term ids per ticket (compact arrays) and document frequencies
    first, then each ticket's truncated vector. Weights are kept as integers 0..255 (CPython shares
    those objects), since only the ranking of dot products matters."""
    index = _Index(ids=[])
    term_id: dict[str, int] = {}
    sequences: list[array[int] | None] = []
    df: Counter[int] = Counter()
    for doc_id, toks in docs:
        index.ids.append(doc_id)
        seq = array("I", [term_id.setdefault(tok, len(term_id)) for tok in toks])
        sequences.append(seq)
        df.update(set(seq))
    index.vocab = list(term_id)
    n = len(index.ids)
    idf = {t: math.log((n + 1) / (c + 1)) + 1.0 for t, c in df.items()}
    for i in range(n):
        held, sequences[i] = sequences[i], None  # freed as we go: the vectors replace them
        tf = Counter(held or ())
        # sqrt(tf): repetition still counts, but a ticket's subject (its noun, said ten times)
        # no longer outweighs everything else it says (see the module docstring).
        weights = {t: math.sqrt(c) * idf[t] for t, c in tf.items()}
        top = heapq.nlargest(params.vector_terms, weights.items(), key=_weight)
        norm = math.sqrt(sum(w * w for _, w in top)) or 1.0
        index.vectors.append({t: max(1, round(_SCALE * w / norm)) for t, w in top})
        shared = [t for t, _ in top if df[t] > 1]
        index.signatures.append(shared[: params.signature_terms])
        index.queries.append(shared[: max(params.query_terms, params.signature_terms)])
    width = len(index.vocab) + 1
    for doc, sig in enumerate(index.signatures):
        for key in _pair_keys(sig, width):
            index.pair_postings.setdefault(key, []).append(doc)
        for t in sig:
            index.term_postings.setdefault(t, []).append(doc)
    return index


def _weight(item: tuple[int, float]) -> float:
    return item[1]


def _hits(index: _Index, doc: int, cap: int, pool: int) -> Counter[int]:
    hits: Counter[int] = Counter()
    width = len(index.vocab) + 1
    sig = index.signatures[doc]
    get = index.pair_postings.get
    for key in _pair_keys(index.queries[doc], width):
        posting = get(key)
        if posting is not None and 1 < len(posting) <= cap:
            hits.update(posting)
    hits.pop(doc, None)
    if len(hits) < pool:
        for t in sig:
            posting = index.term_postings[t]
            if 1 < len(posting) <= cap:
                hits.update(posting)
        hits.pop(doc, None)
    return hits


def candidate_pairs(docs: Iterable[tuple[str, str]], params: Params | None = None) -> list[Candidate]:
    """Candidate duplicate pairs among ``docs`` (id, text), best first; each pair once. ``docs`` is read once."""
    return candidate_pairs_tokens(((doc_id, tokens(text)) for doc_id, text in docs), params)


def candidate_pairs_tokens(docs: Iterable[tuple[str, list[str]]], params: Params | None = None) -> list[Candidate]:
    """``candidate_pairs`` over tokenised ``docs`` (id, tokens)."""
    # The index holds a dict per ticket and a list per key, all alive until the end and none in
    # a reference cycle: the collector's passes over them would be pure cost.
    with gc_paused():
        return _candidate_pairs(docs, params or Params())


def _candidate_pairs(docs: Iterable[tuple[str, list[str]]], params: Params) -> list[Candidate]:
    if params.per_ticket < 1:
        return []
    index = _build_tokens(docs, params)
    if len(index.ids) < 2:
        return []
    cap = params.max_postings or _postings_cap(len(index.ids))
    best: dict[tuple[int, int], float] = {}
    for doc in range(len(index.ids)):
        hits = _hits(index, doc, cap, params.pool)
        if not hits:
            continue
        pool = heapq.nlargest(params.pool, hits, key=hits.__getitem__) if len(hits) > params.pool else list(hits)
        vec = index.vectors[doc]
        keys, mine = vec.keys(), vec.__getitem__
        scored: list[tuple[float, int]] = []
        for other in pool:
            ovec = index.vectors[other]
            shared = keys & ovec.keys()
            # map/mul keep the dot product in C; set iteration order is stable between the two maps.
            score = sum(map(mul, map(mine, shared), map(ovec.__getitem__, shared))) / _SCALE2
            if score > params.min_score:
                scored.append((score, other))
        for score, other in heapq.nlargest(params.per_ticket, scored):
            key = (doc, other) if doc < other else (other, doc)
            if score > best.get(key, -1.0):
                best[key] = score
    out: list[Candidate] = []
    for (i, j), score in best.items():
        a, b = index.ids[i], index.ids[j]
        vi, vj = index.vectors[i], index.vectors[j]
        heaviest = sorted(vi.keys() & vj.keys(), key=lambda t: -(vi[t] * vj[t]))[:6]
        pair = (a, b) if a <= b else (b, a)
        out.append(Candidate(pair[0], pair[1], round(score, 4), tuple(index.vocab[t] for t in heaviest)))
    out.sort(key=lambda c: (-c.score, c.a, c.b))
    return out


def ticket_candidates(tickets: Sequence[Ticket], params: Params | None = None) -> list[Candidate]:
    # A generator: each ticket's text exists only while it is tokenised.
    return candidate_pairs(((t.id, ticket_text(t)) for t in tickets), params)


def recall(found: Sequence[Candidate], planted: Sequence[tuple[str, str]]) -> float:
    if not planted:
        return 1.0
    have = {(c.a, c.b) for c in found}
    hit = sum(1 for a, b in planted if (min(a, b), max(a, b)) in have)
    return hit / len(planted)
