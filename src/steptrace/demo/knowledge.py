"""The demo's knowledge base: a few travel guides in memory, searched with BM25.

Small on purpose, but a real ranking (not a canned answer), so a question of your own retrieves
the guides that actually match it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = (
    "a an and are as at be by do for from how i if in is it my of on or should the this to "
    "what when where which will with you your me we our can need too right now week weekend "
    "today tomorrow visit trip go going get"
)
_STOP = frozenset(_STOP_WORDS.split(" "))


@dataclass(frozen=True)
class Document:
    """One guide: ``text`` opens with its most useful sentence (the scripted model quotes it)."""

    id: str
    title: str
    text: str
    city: str | None = None


DOCUMENTS: tuple[Document, ...] = (
    Document(
        "lisbon-spring",
        "Lisbon in spring",
        "Spring in Lisbon brings short Atlantic showers between sunny spells, so a compact "
        "umbrella or a light rain jacket is worth packing. Evenings by the river turn cool; "
        "bring a layer for the miradouros after sunset.",
        "Lisbon",
    ),
    Document(
        "lisbon-walking",
        "Walking Lisbon's hills",
        "Wear shoes with good grip: the polished limestone calçada gets slippery when wet. "
        "Tram 28 saves the steepest climbs, but it is crowded from late morning.",
        "Lisbon",
    ),
    Document(
        "oslo-winter",
        "Oslo in winter",
        "Oslo winters are cold and dark, with daytime highs around freezing and snow on the "
        "ground; dress in thermal base layers and a windproof outer shell. Ice cleats for "
        "your shoes are sold in most sports shops.",
        "Oslo",
    ),
    Document(
        "tokyo-rainy-season",
        "Tokyo's rainy season",
        "Tokyo's tsuyu rainy season runs from early June to mid-July: expect warm, humid days "
        "and frequent rain, so carry a foldable umbrella. Convenience stores sell cheap "
        "umbrellas if you are caught out.",
        "Tokyo",
    ),
    Document(
        "reykjavik-wind",
        "Reykjavik weather",
        "Weather in Reykjavik changes by the hour and wind drives the rain sideways, so a "
        "hooded waterproof jacket beats an umbrella. Layer wool under it; cotton stays cold "
        "once wet.",
        "Reykjavik",
    ),
    Document(
        "edinburgh-layers",
        "Edinburgh all year",
        "Edinburgh sees drizzle in every season; pack a waterproof jacket and layers you can "
        "add or remove as the sun comes and goes. The Royal Mile cobbles are uneven, so wear "
        "comfortable shoes.",
        "Edinburgh",
    ),
    Document(
        "barcelona-summer",
        "Barcelona in summer",
        "Barcelona summers are hot and sunny, often above 28 °C: pack breathable clothes, a "
        "hat and sunscreen, and plan museums for the afternoon heat. Churches ask for covered "
        "shoulders and knees.",
        "Barcelona",
    ),
    Document(
        "packing-rain",
        "Packing for rain",
        "For a rainy trip, a packable rain jacket and quick-dry layers keep you more "
        "comfortable than a heavy coat. A small umbrella fits in a day bag; waterproof shoes "
        "matter more than waterproof trousers in the city.",
    ),
    Document(
        "packing-cold",
        "Packing for the cold",
        "Three thin layers (base, insulating, shell) are warmer and more flexible than one "
        "thick coat. Do not forget a hat and gloves: you lose a lot of heat through them.",
    ),
    Document(
        "carry-on",
        "Travelling carry-on only",
        "Pack for a week in a carry-on by choosing one colour palette so everything matches, "
        "and wear your bulkiest shoes and jacket on the plane. Liquids go in a clear bag of "
        "100 ml containers.",
    ),
)

CITIES: tuple[str, ...] = tuple(sorted({d.city for d in DOCUMENTS if d.city}))


def tokens(text: str) -> list[str]:
    """Lower-cased words without stop words (a light plural stem keeps 'umbrellas' matching)."""
    words = []
    for word in _WORD.findall(text.lower()):
        if word in _STOP:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        words.append(word)
    return words


class DocumentStore:
    """An in-memory BM25 index over :data:`DOCUMENTS` (k1=1.5, b=0.75)."""

    def __init__(self, documents: tuple[Document, ...] = DOCUMENTS) -> None:
        self.documents = documents
        self._terms = [Counter(tokens(f"{d.title} {d.title} {d.text}")) for d in documents]
        lengths = [sum(terms.values()) for terms in self._terms]
        self._lengths = lengths
        self._average = sum(lengths) / len(lengths)
        frequency: Counter[str] = Counter()
        for terms in self._terms:
            frequency.update(terms.keys())
        n = len(documents)
        self._idf = {
            term: math.log(1 + (n - df + 0.5) / (df + 0.5)) for term, df in frequency.items()
        }

    def search(
        self, query: str, k: int = 3, relative_cutoff: float = 0.4
    ) -> list[tuple[Document, float]]:
        """The ``k`` best matching documents with their scores, best first (none if no match).

        Documents scoring under ``relative_cutoff`` times the best score are left out: a guide
        that shares one common word with the question is noise, not context.
        """
        query_terms = set(tokens(query))
        scored = []
        for document, terms, length in zip(self.documents, self._terms, self._lengths):
            score = 0.0
            for term in query_terms:
                tf = terms.get(term, 0)
                if tf:
                    norm = tf + 1.5 * (1 - 0.75 + 0.75 * length / self._average)
                    score += self._idf[term] * tf * 2.5 / norm
            if score > 0:
                scored.append((document, round(score, 3)))
        scored.sort(key=lambda item: -item[1])
        if not scored:
            return []
        floor = scored[0][1] * relative_cutoff
        return [item for item in scored[:k] if item[1] >= floor]


def find_city(text: str) -> str | None:
    """The first city of the knowledge base named in ``text``, if any."""
    lowered = text.lower()
    positions = [(lowered.find(city.lower()), city) for city in CITIES]
    named = [(pos, city) for pos, city in positions if pos >= 0]
    return min(named)[1] if named else None
