"""Synthetic backlogs for tests and benchmarks, in the ticket format of DESIGN.md §2.

``generate_backlog(root, n)`` writes ``n`` tickets under ``root/backlog/data/pending/`` (and the sample's
``backlog.config.json`` if ``root`` has none), deterministically for a seed, and returns what it planted:
duplicate pairs, incomplete tickets and (with ``messy=True``) files with byte-level quirks.

Tickets are rendered with plain string formatting rather than a YAML dump per ticket: 100,000 tickets must
be written in seconds, and the front matter needs to look hand-written (key order, flow lists), not like
serializer output.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from batch_ops.testing._vocab import (
    ACTIONS,
    AREA_TERMS,
    AREAS,
    AUTHORS,
    COMPANIES,
    CONSTRAINTS,
    DETAILS,
    FACTS,
    MENTIONS,
    NOTES,
    REASONS,
    ROLES,
    SURFACES,
    SYNONYMS,
    TEST_LINES,
    Action,
    article,
    plural,
)

__all__ = ["DEFECTS", "QUIRKS", "GeneratedBacklog", "generate_backlog", "topic_count"]

# What an incomplete ticket may lack; the values are recorded in GeneratedBacklog.incomplete.
DEFECTS: tuple[str, ...] = (
    "no-test-strategy",
    "one-acceptance-criterion",
    "no-affected-files",
    "no-verification-commands",
    "empty-description",
)
# Byte-level quirks sprinkled by messy=True; recorded in GeneratedBacklog.messy.
QUIRKS: tuple[str, ...] = ("crlf", "bom", "broken-yaml", "missing-id")

# Share of each ticket kind. SEC is rarer, as in real backlogs; the weights also decide id prefixes.
_KIND_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("FEAT", 0.40), ("BUG", 0.25), ("TASK", 0.15), ("IDEA", 0.12), ("SEC", 0.08),
)
_PRIORITIES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "FEAT": (("low", "medium", "high", "critical"), (0.35, 0.45, 0.17, 0.03)),
    "BUG": (("low", "medium", "high", "critical"), (0.20, 0.40, 0.30, 0.10)),
    "TASK": (("low", "medium", "high", "critical"), (0.45, 0.40, 0.13, 0.02)),
    "IDEA": (("low", "medium", "high", "critical"), (0.60, 0.35, 0.05, 0.00)),
    "SEC": (("low", "medium", "high", "critical"), (0.05, 0.25, 0.40, 0.30)),
}
_SIZES = (50, 100, 200, 500, 1000, 5000)
_ENVIRONMENTS = ("production", "staging", "all", "production (EU region)", "mobile 4.12 on iOS")
_IDEA_TYPES = ("feature", "experiment", "business-line")
# Editions (modules) of the product. Once every (noun, action) topic of a kind has come, a topic
# comes again about one edition: its own module folder, files and a sentence naming it. Without this a
# backlog larger than the topics (about 32,000) repeated a topic with the same files and nearly the
# same text, so it held duplicates nobody had planted. Each repeat of a topic names another edition,
# and the names are spread over the backlog (one name per round would put one word in a third of
# the tickets at 100,000, where a real module name is rare).
_EDITIONS = (
    "Orion", "Juniper", "Kestrel", "Tundra", "Cobalt", "Saffron", "Marlin", "Quartz", "Willow", "Ember",
    "Aspen", "Basalt", "Cedar", "Dahlia", "Egret", "Falcon", "Garnet", "Heron", "Indigo", "Jasper",
    "Kodiak", "Lotus", "Magnolia", "Nimbus", "Onyx", "Pelican", "Quill", "Raven", "Sequoia", "Topaz",
    "Umber", "Vireo", "Walnut", "Xenon", "Yarrow", "Zircon", "Alder", "Bramble", "Cypress", "Drift",
)  # fmt: skip
_SYN_RE = re.compile(r"\b(" + "|".join(sorted(SYNONYMS, key=len, reverse=True)) + r")\b")
_SYN_BIT = {word: 1 << i for i, word in enumerate(SYNONYMS)}
# Which wording each part of a ticket uses (bit set: wording b). Unrelated tickets draw the bits at random,
# so two tickets sharing an action rarely share all its text; a planted twin takes the complement of its
# original, so every part is reworded.
_TITLE, _WHAT, _ACS, _REASON, _CONSTRAINT, _NOTE, _DETAIL, _ROLE, _SURFACE, _FACT, _ORDER = (
    1 << i for i in range(11)
)
_ALL_PARTS = (1 << 11) - 1


@dataclass(frozen=True)
class GeneratedBacklog:
    """What generate_backlog wrote. Ids are the intended ids, also for files whose front matter lacks one."""

    root: Path
    config_path: Path
    paths: list[Path]
    ids: list[str]
    # Planted duplicate pairs as sorted id tuples, the list sorted too.
    pairs: list[tuple[str, str]]
    # id -> defects (values of DEFECTS) for tickets generated incomplete.
    incomplete: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # id -> quirk (a value of QUIRKS) for files written with a byte-level quirk.
    messy: dict[str, str] = field(default_factory=dict)

    def path_of(self, ticket_id: str) -> Path:
        return self.paths[self.ids.index(ticket_id)]


def topic_count() -> dict[str, int]:
    """Distinct (noun, action) topics per kind, before topics start repeating with other details."""
    nouns = sum(len(area[2]) for area in AREAS)
    counts: dict[str, int] = {}
    for action in ACTIONS:
        counts[action.kind] = counts.get(action.kind, 0) + nouns
    return counts


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


_WORD_RE = re.compile(r"[A-Za-z0-9]+")


@functools.cache
def _camel(words: str) -> str:
    # Cached: only a few hundred nouns and action keys exist, and this runs several times per ticket.
    parts = _WORD_RE.findall(words)
    return parts[0].lower() + "".join(p[:1].upper() + p[1:].lower() for p in parts[1:]) if parts else "x"


def _slug(title: str, max_words: int = 6) -> str:
    return "-".join(_WORD_RE.findall(title.lower())[:max_words]) or "ticket"


def _date(day: int) -> str:
    # Days from 2025-06-01 in 28-day months: always a valid date, and far cheaper than datetime per ticket.
    month0, dom = divmod(day, 28)
    year, month = 2025 + (5 + month0) // 12, (5 + month0) % 12 + 1
    return f"{year:04d}-{month:02d}-{dom + 1:02d}"


class _Topics:
    """Per kind, a deterministic stream of (area index, noun, action) topics.

    Every (noun, action) combination of a kind comes once, in a shuffled order, before any repeats; a
    repeat is about an edition (``_EDITIONS``, another one each round), with its own module and files, and
    gets other slot values (role, surface, numbers, terms), so it is other work, not a copy.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._nouns = [(ai, noun) for ai, area in enumerate(AREAS) for noun in area[2]]
        self._actions: dict[str, list[Action]] = {}
        for action in ACTIONS:
            self._actions.setdefault(action.kind, []).append(action)
        self._streams: dict[str, Iterator[tuple[int, str, Action, int]]] = {
            kind: self._stream(kind) for kind in self._actions
        }

    def _stream(self, kind: str) -> Iterator[tuple[int, str, Action, int]]:
        actions = self._actions[kind]
        for rnd in itertools.count():
            # Index arithmetic instead of materialising the product: a permutation of indices per round.
            total = len(self._nouns) * len(actions)
            order = list(range(total))
            self._rng.shuffle(order)
            for idx in order:
                ai, noun = self._nouns[idx % len(self._nouns)]
                # Round r of a topic names edition r steps on from where the topic's own offset
                # starts: rounds of one topic never share an edition (up to len(_EDITIONS) rounds).
                named = 0 if rnd == 0 else (idx * 7 + rnd - 1) % len(_EDITIONS) + 1
                yield ai, noun, actions[idx // len(self._nouns)], named

    def next(self, kind: str) -> tuple[int, str, Action, int]:
        return next(self._streams[kind])


@dataclass
class _Spec:
    ticket_id: str
    kind: str
    area: int
    noun: str
    action: Action
    role: int
    surface: int
    reason: int
    constraint: int
    note: int
    detail: int
    fact: int
    t1: str
    t2: str
    t3: str
    k: int
    d: int
    priority: str
    created_day: int
    tokens: int
    depends_on: list[str]
    mask: int = 0
    twin: bool = False
    syn_bits: int = 0
    company: str = ""
    defects: tuple[str, ...] = ()
    quirk: str = ""
    extra_files: int = 0
    edition: int = 0  # 0: the product as a whole; n: _EDITIONS[n - 1]
    scope: str = ""
    author: str = "maria.k"
    tags: list[str] = field(default_factory=list)
    env: str = ""
    idea_type: str = ""
    ice: float = 0.0


def _render(spec: _Spec, rng: random.Random) -> tuple[str, str]:
    """Return (title, file text) of one ticket."""
    area_label, area_dir, _ = AREAS[spec.area]
    mask = spec.mask
    noun = spec.noun
    nouns = plural(noun)
    role = ROLES[spec.role][1 if mask & _ROLE else 0]
    a_n = f"{article(noun)} {noun}"
    fields = {
        "n": noun, "ns": nouns, "N": _cap(noun), "Ns": _cap(nouns), "area": area_label, "a_n": a_n,
        "A_n": _cap(a_n), "surface": SURFACES[spec.surface][1 if mask & _SURFACE else 0], "role": role,
        "Role": _cap(role), "k": spec.k, "d": spec.d, "t1": spec.t1, "t2": spec.t2, "t3": spec.t3,
    }
    act = spec.action
    bits = spec.syn_bits

    def syn(match: re.Match[str]) -> str:
        word = match.group(0)
        return SYNONYMS[word] if bits & _SYN_BIT[word] else word

    def tpl(template: str) -> str:
        return _SYN_RE.sub(syn, template).format(**fields)

    title = tpl(act.title_b if mask & _TITLE else act.title_a)
    what = tpl(act.what_b if mask & _WHAT else act.what_a)
    reason = REASONS[spec.reason][1 if mask & _REASON else 0].format(**fields)
    constraint = CONSTRAINTS[spec.constraint][1 if mask & _CONSTRAINT else 0].format(**fields)
    note = NOTES[spec.note][1 if mask & _NOTE else 0].format(**fields)
    detail = DETAILS[spec.detail][1 if mask & _DETAIL else 0].format(**fields)
    fact = FACTS[spec.fact][1 if mask & _FACT else 0].format(**fields)
    acs = [tpl(a) for a in (act.acs_b if mask & _ACS else act.acs_a)]
    acs.append(
        f"Each {noun} still shows the right {spec.t1} afterwards." if mask & _ACS
        else f"The {spec.t1} of {a_n} is correct after the change."
    )
    if mask & _ORDER:
        # Rewording also moves sentences around: criteria and description sentences change order.
        acs.reverse()
        desc = f"{detail} {constraint} {what} {fact}"
    else:
        desc = f"{what} {fact} {detail} {constraint}"
    module_dir = area_dir
    if spec.edition:
        edition = _EDITIONS[spec.edition - 1]
        title = f"{title} in {edition}"
        scope_line = (
            f"Only the {edition} edition needs it; the other editions keep their {nouns} unchanged."
            if spec.twin else f"This is for the {edition} edition; other editions do not change."
        )
        desc = f"{scope_line} {desc}"
        module_dir = f"{area_dir}/{edition.lower()}"

    noun_dir = _camel(noun)
    action_file = _camel(act.key)
    files = [
        (f"src/{module_dir}/{noun_dir}/{action_file}.ts", "create" if act.kind != "BUG" else "modify"),
        (f"src/{module_dir}/{noun_dir}/{_cap(noun_dir)}View.tsx", "modify"),
        (f"tests/{module_dir}/{noun_dir}/{action_file}.test.ts", "create"),
    ]
    for i in range(spec.extra_files):
        files.append((f"src/{area_dir}/shared/{action_file}Part{i + 1}.ts", "modify"))
    if spec.twin:
        files = files[:2] + files[3:] if len(files) > 3 else files[:2]

    d = spec.defects
    tid = spec.ticket_id
    created = _date(spec.created_day)
    updated = _date(spec.created_day + rng.randrange(0, 20))
    extra = ""
    if spec.kind == "BUG":
        # Severity follows priority: triage weighs both, and a critical bug rated "low" would be noise.
        extra = f"severity: {spec.priority}\nenvironment: {spec.env}\n"
    elif spec.kind == "IDEA":
        extra = f"type: {spec.idea_type}\nice_score: {spec.ice}\n"
    id_line = "" if spec.quirk == "missing-id" else f"id: {tid}\n"
    # An unclosed quote is the commonest hand-edit breakage; the mis-indented key makes sure a lenient
    # parser cannot recover either.
    title_line = f'title: "{title}\n  assignee: x\n' if spec.quirk == "broken-yaml" else f'title: "{title}"\n'
    scope = f'scope_boundary: "{spec.scope}"\n' if spec.scope else ""
    deps = ", ".join(spec.depends_on)
    shared = files[1][0] if spec.extra_files else ""
    parts = [
        f"---\n{id_line}{title_line}status: pending\npriority: {spec.priority}\n{extra}"
        f"created: {created}\nupdated: {updated}\nassignee: unassigned\ntags: [{', '.join(spec.tags)}]\n"
        f"blockers: []\ndepends_on: [{deps}]\nshared_files: [{shared}]\nrelated_docs: []\n"
        f"estimated_tokens: {spec.tokens}\n{scope}---\n\n# {tid}: {title}\n\n",
        f"## Context\n{reason} {MENTIONS[1 if spec.twin else 0].format(company=spec.company)}\n\n"
        if spec.company else f"## Context\n{reason}\n\n",
        "## Description\n\n" if "empty-description" in d else f"## Description\n{desc}\n\n",
    ]
    if "no-affected-files" not in d:
        rows = "".join(f"| {path} | {change} |\n" for path, change in files)
        parts.append(f"## Affected Files\n| File | Change |\n| --- | --- |\n{rows}\n")
    if "one-acceptance-criterion" in d:
        acs = acs[:1]
    else:
        acs.append(f"Tests for {nouns} pass in CI.")
    parts.append("## Acceptance Criteria\n" + "".join(f"- [ ] AC-{i}: {a}\n" for i, a in enumerate(acs, 1)))
    parts.append("\n")
    if "no-test-strategy" not in d:
        t1, t2 = rng.sample(TEST_LINES, 2)
        strategy = f"## Test Strategy\n{t1.format(**fields)}\n{t2.format(**fields)}\n\n"
        if "no-verification-commands" not in d:
            strategy += (
                f"### Verification Commands\n```bash\nnpx vitest run tests/{module_dir}/{noun_dir}\n"
                f"npm run lint -- src/{module_dir}/{noun_dir}\n```\n\n"
            )
        parts.append(strategy)
    if spec.depends_on:
        rows = "".join(f"| {dep} | earlier work in {area_label} | pending |\n" for dep in spec.depends_on)
    else:
        rows = "| (none) | — | — |\n"
    parts.append(f"## Dependencies\n| Ticket | What it needs | Status |\n| --- | --- | --- |\n{rows}\n")
    parts.append(f"## Implementation Notes\n{note}\n\n")
    parts.append(
        "## History\n| Date | Author | Change |\n| --- | --- | --- |\n"
        f"| {created} | {spec.author} | Created |\n"
    )
    text = "".join(parts)
    if article(noun) == "an":
        # Templates say "a {n}"; fix the article once for the whole text rather than in every template.
        text = text.replace(f" a {noun}", f" an {noun}").replace(f"A {noun}", f"An {noun}")
        title = title.replace(f" a {noun}", f" an {noun}").replace(f"A {noun}", f"An {noun}")
    return title, text


def _encode(text: str, quirk: str) -> bytes:
    data = text.encode("utf-8")
    if quirk == "crlf":
        return data.replace(b"\n", b"\r\n")
    if quirk == "bom":
        return b"\xef\xbb\xbf" + data
    return data


def _sample_config() -> bytes:
    ref = importlib.resources.files("batch_ops").joinpath("data", "sample", "backlog.config.json")
    return ref.read_bytes()


def generate_backlog(
    root: Path,
    n: int,
    *,
    duplicates: int = 0,
    seed: int = 0,
    incomplete_ratio: float = 0.3,
    messy: bool = False,
    messy_ratio: float = 0.04,
) -> GeneratedBacklog:
    """Write ``n`` pending tickets under ``root/backlog/data/pending/``.

    ``duplicates`` pairs are planted: the second ticket of a pair is the first one's topic reworded
    (other title, synonyms, reordered sentences, a different role/surface phrasing, fewer files) under a
    different id. With ``messy=True`` about ``messy_ratio`` of the files get a quirk from QUIRKS; members of
    planted pairs never get broken YAML or an empty description, so every pair stays detectable.
    """
    if n < 0 or duplicates < 0 or 2 * duplicates > n:
        raise ValueError(f"need 0 <= 2*duplicates <= n, got n={n}, duplicates={duplicates}")
    if not 0.0 <= incomplete_ratio <= 1.0:
        raise ValueError(f"incomplete_ratio must be within [0, 1], got {incomplete_ratio}")
    rng = random.Random(seed)
    pending = root / "backlog" / "data" / "pending"
    pending.mkdir(parents=True, exist_ok=True)
    config_path = root / "backlog.config.json"
    if not config_path.exists():
        config_path.write_bytes(_sample_config())

    topics = _Topics(random.Random(rng.random()))
    kinds = [k for k, _ in _KIND_WEIGHTS]
    weights = [w for _, w in _KIND_WEIGHTS]
    counters = dict.fromkeys(kinds, 0)

    def new_id(kind: str) -> str:
        counters[kind] += 1
        return f"{kind}-{counters[kind]:03d}"

    # Slots of pair members: the twin always comes after its original, as a later report would.
    slots = rng.sample(range(n), 2 * duplicates) if duplicates else []
    twin_of: dict[int, int] = {}
    for i in range(0, len(slots), 2):
        first, second = sorted(slots[i:i + 2])
        twin_of[second] = first
    in_pair = set(slots)

    specs: list[_Spec] = []
    ids: list[str] = []
    for i in range(n):
        original = specs[twin_of[i]] if i in twin_of else None
        if original is not None:
            # A reworded report of the same topic; features are sometimes re-filed as ideas.
            kind = "IDEA" if original.kind == "FEAT" and rng.random() < 0.25 else original.kind
            ai, noun, action, edition = original.area, original.noun, original.action, original.edition
        else:
            kind = rng.choices(kinds, weights)[0]
            ai, noun, action, edition = topics.next(kind)
        terms = rng.sample(AREA_TERMS[ai], 3)
        pri_names, pri_weights = _PRIORITIES[kind]
        priority = rng.choices(pri_names, pri_weights)[0]
        risky = kind == "SEC" or priority == "critical"
        tokens = rng.randrange(60, 200) * 1000 if risky else rng.randrange(5, 40) * 1000
        depends = []
        if ids and rng.random() < (0.6 if risky else 0.12):
            depends = sorted({ids[rng.randrange(len(ids))] for _ in range(rng.randint(1, 3))})
        spec = _Spec(
            ticket_id=new_id(kind), kind=kind, area=ai, noun=noun, action=action,
            role=rng.randrange(len(ROLES)), surface=rng.randrange(len(SURFACES)),
            reason=rng.randrange(len(REASONS)), constraint=rng.randrange(len(CONSTRAINTS)),
            note=rng.randrange(len(NOTES)), detail=rng.randrange(len(DETAILS)),
            fact=rng.randrange(len(FACTS)), t1=terms[0], t2=terms[1], t3=terms[2],
            k=rng.choice(_SIZES), d=rng.randint(3, 11),
            priority=priority, created_day=rng.randrange(0, 250), tokens=tokens, depends_on=depends,
            extra_files=rng.randint(3, 7) if risky else rng.randint(0, 1), edition=edition,
            author=rng.choice(AUTHORS), syn_bits=rng.getrandbits(len(SYNONYMS)),
            company=rng.choice(COMPANIES) if rng.random() < 0.5 else "",
            tags=[AREAS[ai][1], action.key] + (["security"] if kind == "SEC" else []),
        )
        if spec.surface == 1 and spec.constraint == 3:
            # "must match the mobile app" makes no sense when the surface is the mobile app itself.
            spec.constraint = 2
        if original is not None:
            # Same facts (role, surface, numbers, reason, constraint) in the other wording.
            spec.mask, spec.twin = original.mask ^ _ALL_PARTS, True
            spec.role, spec.surface, spec.k, spec.d = original.role, original.surface, original.k, original.d
            spec.reason, spec.constraint, spec.note = original.reason, original.constraint, original.note
            spec.detail, spec.fact = original.detail, original.fact
            spec.t1, spec.t2, spec.t3 = original.t1, original.t2, original.t3
            spec.company = original.company
            spec.priority = original.priority if kind != "IDEA" else "low"
            spec.created_day = original.created_day + rng.randrange(1, 60)
            spec.tags = [AREAS[ai][1]]
        else:
            spec.mask = rng.getrandbits(11)
        if kind == "BUG":
            spec.env = rng.choice(_ENVIRONMENTS)
        elif kind == "IDEA":
            spec.idea_type = rng.choice(_IDEA_TYPES)
            spec.ice = round(rng.uniform(1.0, 9.5), 1)
        roll = rng.random()
        if roll < 0.05:
            # Boilerplate that merely looks security-relevant, as in real tickets.
            spec.scope = "do not touch src/auth/"
        elif roll < 0.25:
            spec.scope = f"src/{AREAS[ai][1]}/ only"
        if rng.random() < incomplete_ratio:
            choices = [x for x in DEFECTS if not (i in in_pair and x == "empty-description")]
            count = 1 if rng.random() < 0.8 else 2
            spec.defects = tuple(sorted(rng.sample(choices, count), key=DEFECTS.index))
        if messy and rng.random() < messy_ratio:
            choices = [q for q in QUIRKS if not (i in in_pair and q == "broken-yaml")]
            spec.quirk = rng.choice(choices)
        specs.append(spec)
        ids.append(spec.ticket_id)

    paths: list[Path] = []
    incomplete: dict[str, tuple[str, ...]] = {}
    messy_map: dict[str, str] = {}
    for spec in specs:
        title, text = _render(spec, rng)
        path = pending / f"{spec.ticket_id}-{_slug(title)}.md"
        path.write_bytes(_encode(text, spec.quirk))
        paths.append(path)
        if spec.defects:
            incomplete[spec.ticket_id] = spec.defects
        if spec.quirk:
            messy_map[spec.ticket_id] = spec.quirk

    pairs: list[tuple[str, str]] = []
    for second, first in twin_of.items():
        a, b = sorted((specs[first].ticket_id, specs[second].ticket_id))
        pairs.append((a, b))
    pairs.sort()
    return GeneratedBacklog(
        root=root, config_path=config_path, paths=paths, ids=ids, pairs=pairs,
        incomplete=incomplete, messy=messy_map,
    )
