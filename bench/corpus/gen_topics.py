#!/usr/bin/python3
"""Writes a benchmark deployment config (the shape of examples/escucha.json) with --topics topics
of 3-8 terms or phrases each, drawn from the corpus vocabulary (vocab.py), 20 topics per team.

Topic terms are mostly specific words (ranks 2,000-40,000 of their language), so that, as in
real social listening, most posts match no topic: with 1,000 topics about a quarter of the
posts match one or more. One topic in ten is "popular" (words of ranks 300-3,000). Elements are
words, two-word phrases, #hashtags and @mentions that the corpus uses.

--mode keywords: every topic is a keyword list (docs/classifier.md).
--mode query: every topic is a boolean query (docs/query-language.md): OR groups, AND NOT
  exclusions, NEAR/n between OR groups, exact phrases, trailing wildcards, and some exclude
  queries.
--mode mixed (default): 70 % keyword lists, 30 % queries.

Whatever the mode, team "canary" holds the canary topics whose exact counts a run can check
(gen_corpus.py plants their tokens) and the topic "marker" used by the latency probe; they come
on top of --topics. In keyword mode the canary topics are keyword lists (their expected counts
differ: see corpus.meta.json "keywords" vs "query").

Sections redis, bus and sources are placeholders: bench/e2e/run_e2e.py fills them in.
Deterministic for (--topics, --mode, --seed). Standard library only.

    /usr/bin/python3 bench/corpus/gen_topics.py --topics 1000 --out out/bench/topics-1000.json
"""

import argparse
import json
import math
import os
import sys
from random import Random

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vocab as V  # noqa: E402

TEAM_SIZE = 20
LANG_SHARE = (("es", 0.55), ("en", 0.30), ("pt", 0.15))
CANARY_TEAM = "canary"
MARKER_TOPIC = "marker"
NEAR_N = 3  # gen_corpus.c G_NEAR_N


def canary_topics(mode):
    """The canary team's topics for a mode ("keywords" or query semantics)."""
    if mode == "keywords":
        topics = [
            {"id": "plain", "keywords": [V.CANARY_PLAIN]},
            {"id": "not", "keywords": [V.CANARY_NOT]},
            {"id": "near", "keywords": [V.CANARY_NEAR_A]},
            {"id": "phrase", "keywords": ["%s %s" % (V.CANARY_PHRASE_A, V.CANARY_PHRASE_B)]},
        ]
    else:
        topics = [
            {"id": "plain", "query": V.CANARY_PLAIN},
            {"id": "not", "query": "%s NOT %s" % (V.CANARY_NOT, V.CANARY_VETO)},
            {"id": "near", "query": "%s NEAR/%d %s" % (V.CANARY_NEAR_A, NEAR_N, V.CANARY_NEAR_B)},
            {"id": "phrase", "query": '"%s %s"' % (V.CANARY_PHRASE_A, V.CANARY_PHRASE_B)},
        ]
    topics.append({"id": MARKER_TOPIC, "keywords": [V.MARKER]})
    for t in topics:
        t["name"] = "Canary " + t["id"]
    return topics


class Picker:
    """Draws topic elements from the vocabulary."""

    def __init__(self, rng):
        self.rng = rng
        self.vocab = V.build()
        self.tags = V.hashtags(self.vocab)
        self.people = V.authors(5000)

    def word(self, lang, popular):
        words = self.vocab[lang]
        lo, hi = (300, 3000) if popular else (2000, len(words))
        return words[self.rng.randrange(lo, hi)]

    def element(self, lang, popular, allow_wildcard):
        r = self.rng.random()
        if r < 0.6:
            return self.word(lang, popular)
        if r < 0.75:
            words = self.vocab[lang]
            return "%s %s" % (words[self.rng.randrange(100, 3000)],
                              words[self.rng.randrange(100, 3000)])
        if r < 0.9:
            return "#" + self.tags[lang][self.rng.randrange(50, len(self.tags[lang]))]
        if r < 0.95 or not allow_wildcard:
            return "@" + self.people[self.rng.randrange(0, len(self.people))][2]
        w = self.word(lang, popular)
        while len(w) < 6:
            w = self.word(lang, popular)
        return w[:5] + "*"


def q_elem(e):
    """An element written in the query language: phrases quoted, the rest as is."""
    return '"%s"' % e if " " in e else e


def q_group(elems):
    if len(elems) == 1:
        return q_elem(elems[0])
    return "(" + " OR ".join(q_elem(e) for e in elems) + ")"


def make_query(rng, pick, lang, popular):
    """A boolean query of 3-8 elements; returns (query, exclude or None)."""
    n = rng.randint(3, 8)
    form = rng.random()
    exclude = None
    if form < 0.35:
        inc = [pick.element(lang, popular, True) for _ in range(max(2, n - 2))]
        neg = [pick.word(lang, True) for _ in range(n - len(inc))]
        q = "%s AND NOT %s" % (q_group(inc), q_group(neg))
    elif form < 0.65:
        k = max(1, n // 2)
        left = [pick.word(lang, True) for _ in range(k)]
        right = [pick.word(lang, popular) for _ in range(n - k)]
        q = "%s NEAR/%d %s" % (q_group(left), rng.randint(2, 8), q_group(right))
        if rng.random() < 0.5:
            q = "(%s) OR %s" % (q, q_elem(pick.element(lang, popular, True)))
    elif form < 0.85:
        q = " OR ".join(q_elem(pick.element(lang, popular, True)) for _ in range(n))
    else:
        inc = [pick.element(lang, popular, True) for _ in range(n - 1)]
        q = q_group(inc) + " -" + pick.word(lang, True)
    if rng.random() < 0.1:
        exclude = " OR ".join(pick.word(lang, True) for _ in range(2))
    return q, exclude


def make_config(n_topics, mode, seed):
    rng = Random("topics-%d-%s-%d" % (n_topics, mode, seed))
    pick = Picker(rng)
    langs = [x for x, _ in LANG_SHARE]
    weights = [w for _, w in LANG_SHARE]
    teams = []
    n_teams = int(math.ceil(n_topics / TEAM_SIZE))
    made = 0
    for t in range(n_teams):
        topics = []
        for k in range(min(TEAM_SIZE, n_topics - made)):
            lang = rng.choices(langs, weights)[0]
            popular = rng.random() < 0.1
            use_query = mode == "query" or (mode == "mixed" and rng.random() < 0.3)
            topic = {"id": "topic%05d" % (made + k), "name": "Topic %d (%s)" % (made + k, lang)}
            if use_query:
                q, ex = make_query(rng, pick, lang, popular)
                topic["query"] = q
                if ex:
                    topic["exclude"] = ex
            else:
                n = rng.randint(3, 8)
                kws = []
                while len(kws) < n:
                    e = pick.element(lang, popular, False)
                    if e not in kws:
                        kws.append(e)
                topic["keywords"] = kws
            topics.append(topic)
        made += len(topics)
        teams.append({"id": "team%04d" % t, "name": "Team %d" % t, "language": "es",
                      "timezone": "America/Lima", "topics": topics})
    teams.append({"id": CANARY_TEAM, "name": "Canaries", "language": "en", "timezone": "UTC",
                  "topics": canary_topics("keywords" if mode == "keywords" else "query")})
    return {
        "deployment": "bench",
        "comment": "generated by bench/corpus/gen_topics.py --topics %d --mode %s --seed %d; "
                   "redis, bus and sources are filled in by bench/e2e/run_e2e.py"
                   % (n_topics, mode, seed),
        "redis": {"host": "127.0.0.1", "port": 6379, "prefix": "esc"},
        "bus": {"collect": "tcp://127.0.0.1:5550", "classify": "tcp://127.0.0.1:5551",
                "aggregate": "tcp://127.0.0.1:5552", "notify": "tcp://127.0.0.1:5553"},
        "sources": [],
        "teams": teams,
    }


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("--mode", choices=("keywords", "query", "mixed"), default="mixed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if not 1 <= a.topics <= 19000:
        ap.error("--topics must be 1..19000")
    cfg = make_config(a.topics, a.mode, a.seed)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=1)
    n_q = sum(1 for t in cfg["teams"] for x in t["topics"] if "query" in x)
    print("topics: %d (+%d canary) in %d teams, %d with a query -> %s"
          % (a.topics, len(cfg["teams"][-1]["topics"]), len(cfg["teams"]), n_q, a.out),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
