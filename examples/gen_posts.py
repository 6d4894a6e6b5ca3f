#!/usr/bin/python3
"""Writes the escucha demo data: one post per line in the project's JSON shape (docs/collector.md).

The posts cover Monday 2026-11-16 00:00 to Sunday 2026-11-22 23:59 in Lima time (UTC-5, no DST)
with a daily rhythm, about 65 % Spanish and 35 % English, and talk about the six topics of
examples/escucha.json (congreso, elecciones, corrupcion, informalidad, digitalizacion, anemia) in
varied forms: accented and unaccented, upper case, hashtags and phrases. About 15 % of the posts
match no topic. On Thursday 2026-11-19 between 15:00 and 16:00 Lima time a burst of extra posts
about a vacancy vote in Congress makes the topic gobernanza/congreso spike.

Deterministic: the same --seed and options always give the same bytes. Standard library only.
--not-after TIME (ISO 8601 with a zone, or "now") leaves out the posts dated later: the demo
passes "now", so that while the demo week is not over no post comes from the future (the
collector would set such a post's event time to the moment it reads it, and the remaining
hours of the week would pile up in one minute and look like a spike).

    /usr/bin/python3 examples/gen_posts.py --out out/demo/posts.jsonl
    /usr/bin/python3 examples/gen_posts.py --count 200 --burst 0 --bad 3 --summary
"""

import argparse
import datetime as dt
import json
import os
import re
import sys
import unicodedata
from random import Random

LIMA = dt.timezone(dt.timedelta(hours=-5), "America/Lima")
WEEK_START = dt.datetime(2026, 11, 16, 0, 0, tzinfo=LIMA)  # Monday
DAYS = 7
BURST_START = dt.datetime(2026, 11, 19, 15, 0, tzinfo=LIMA)  # Thursday
BURST_MINUTES = 60
NO_TOPIC_SHARE = 0.15
SPANISH_SHARE = 0.65
N_AUTHORS = 200

# Relative number of posts per local hour: quiet at night, busy from morning to late evening.
HOUR_WEIGHTS = [
    0.9, 0.5, 0.3, 0.2, 0.2, 0.4, 0.9, 1.8, 2.8, 3.4, 3.6, 3.7,
    4.0, 3.8, 3.5, 3.4, 3.4, 3.5, 3.9, 4.3, 4.4, 3.9, 2.9, 1.7,
]
# Relative volume per weekday, Monday first.
DAY_WEIGHTS = [1.0, 1.05, 1.0, 1.1, 1.05, 0.8, 0.7]
# How much each topic is talked about.
TOPIC_WEIGHTS = {
    "gobernanza/congreso": 1.2,
    "gobernanza/elecciones": 1.3,
    "gobernanza/corrupcion": 1.0,
    "desarrollo/informalidad": 0.8,
    "desarrollo/digitalizacion": 0.8,
    "desarrollo/anemia": 0.7,
}
PLATFORMS = [("mastodon", 0.35), ("bluesky", 0.3), ("reddit", 0.2), ("rss", 0.15)]

# How each topic is written. {k} in a template takes one of these, so every form shows up.
FORMS = {
    "gobernanza/congreso": {
        "es": ["el Congreso", "el congreso", "el CONGRESO", "la congresista", "el congresista",
               "el Poder Legislativo", "el poder legislativo"],
        "en": ["Peru's Congreso", "the Congreso", "the CONGRESO", "a congresista",
               "the Poder Legislativo"],
    },
    "gobernanza/elecciones": {
        "es": ["las elecciones", "las Elecciones", "las ELECCIONES", "la elección",
               "la eleccion", "el voto", "la ONPE", "el JNE"],
        "en": ["the elections", "the Elections", "early voting at the ONPE", "the JNE ruling",
               "the elections board (JNE)"],
    },
    "gobernanza/corrupcion": {
        "es": ["la corrupción", "la corrupcion", "la CORRUPCIÓN", "un soborno", "el soborno"],
        "en": ["corruption", "CORRUPTION", "bribery", "the bribery case"],
    },
    "desarrollo/informalidad": {
        "es": ["la informalidad", "la INFORMALIDAD", "el empleo informal",
               "la informalidad laboral"],
        "en": ["informal work", "the informal economy", "Informal work",
               "Peru's informal economy"],
    },
    "desarrollo/digitalizacion": {
        "es": ["la digitalización", "la digitalizacion", "la transformación digital",
               "la transformacion digital", "la DIGITALIZACIÓN"],
        "en": ["digitalization", "digital government", "Digital government",
               "the digitalization push"],
    },
    "desarrollo/anemia": {
        "es": ["la anemia", "la anemia infantil", "la ANEMIA", "la desnutrición",
               "la desnutricion"],
        "en": ["anemia", "child anemia", "malnutrition", "Anemia"],
    },
}
TOPIC_TAGS = {
    "gobernanza/congreso": ["CongresoPerú", "Congreso", "PoderLegislativo"],
    "gobernanza/elecciones": ["Elecciones2026", "EleccionesPerú", "ONPE", "JNE"],
    "gobernanza/corrupcion": ["Corrupción", "NoALaCorrupción", "Soborno"],
    "desarrollo/informalidad": ["Informalidad", "EmpleoInformal", "InformalEconomy"],
    "desarrollo/digitalizacion": ["TransformaciónDigital", "Digitalización", "GobiernoDigital"],
    "desarrollo/anemia": ["Anemia", "AnemiaCero", "Desnutrición"],
}
TEMPLATES = {
    "es": [
        "{K} vuelve a estar en el centro del debate {e}",
        "¿Alguien más piensa que {k} necesita cambios urgentes? {e}",
        "Hoy en {place}: conversatorio sobre {k}. Más información en {url}",
        "Según un informe reciente, {k} preocupa al {pct}% de los encuestados {e}",
        "Lo que nadie dice sobre {k} 🧵 (hilo)",
        "{K}: ya era hora de que alguien lo dijera. {e}",
        "Mañana a las {hh}:00 conversamos sobre {k} con {mention} {e}",
        "En {place} la gente habla de {k} más que del fútbol.",
        "Acabo de leer esta nota sobre {k}: {url}",
        "Año tras año lo mismo con {k}. ¿Hasta cuándo? {e}",
    ],
    "en": [
        "{K}: back in the headlines again {e}",
        "Thread on {k} in Peru 🧵 what we learned this week",
        "New report: {pct}% of respondents in {place} worry about {k} {e}",
        "Good piece by {mention} on {k}: {url}",
        "Why does nobody talk about {k}? {e}",
        "Panel tomorrow at {hh}:00 on {k}, join us {e}",
        "{K}, explained in five charts: {url}",
        "Spent the day in {place} talking to people about {k}.",
    ],
}
# Posts that mention no topic at all (checked below against every keyword of the config).
OFF_TOPIC = {
    "es": [
        "¡Qué partidazo anoche en el Nacional! {e} #Fútbol",
        "El ceviche de {place} sigue siendo el mejor del mundo {e}",
        "Lluvia en {place} y el tráfico imposible otra vez 🚗🚗🚗",
        "Recomiéndenme un libro para el fin de semana 📚",
        "Amaneció soleado en {place} ☀️ buen día a todos",
        "Concierto gratuito este sábado en {place} 🎶 {url}",
        "Mi gata decidió que el teclado es su cama 🐈",
        "Probando la nueva panadería del barrio, 10/10 🥐",
        "Feliz cumpleaños, {mention} 🎂🎉",
        "Alguien sabe si el tren a Machu Picchu sale a tiempo hoy? 🚆",
    ],
    "en": [
        "Best pisco sour I've had in {place} {e}",
        "Traffic in {place} is unreal today 🚕",
        "Anyone up for a hike near {place} this weekend? ⛰️",
        "Listening to Chabuca Granda on repeat 🎶",
        "My sourdough finally rose. Small wins 🍞",
        "Photo dump from {place} {url}",
        "Happy birthday {mention} 🎉",
    ],
}
# The burst: a vacancy vote in Congress, Thursday 15:00-16:00 Lima time.
BURST_TEMPLATES = {
    "es": [
        "🚨 URGENTE: el Congreso debate la moción de vacancia presidencial #CongresoPerú",
        "En vivo: votación de la vacancia en el Congreso {e} {url}",
        "¡El CONGRESO aprueba la vacancia! {e} #CongresoPerú #Vacancia",
        "Congresistas llegan al hemiciclo para la vacancia 🏛️ #Congreso",
        "No puedo creer lo que está pasando en el Congreso ahora mismo {e}",
        "Los números de la votación en el congreso no cuadran 🤔 #Vacancia",
        "El Poder Legislativo decide hoy el futuro del país {e}",
        "{mention} cuenta en vivo lo que pasa en el Congreso: {url}",
    ],
    "en": [
        "BREAKING: Peru's Congreso is voting on the presidential vacancy motion {e}",
        "Live: the Congreso in Lima votes on removing the president {url}",
        "Huge moment in Peru's congreso right now {e} #CongresoPerú",
    ],
}
PLACES = ["Lima", "Arequipa", "Cusco", "Trujillo", "Piura", "Iquitos", "Puno", "Chiclayo",
          "Huancayo", "Tacna", "Ayacucho", "Cajamarca"]
EMOJI = ["🇵🇪", "📢", "🤔", "😡", "👏", "📊", "🔥", "🙌", "😔", "💬", "✊", "🗳️", "📉", "📈"]
NEWS_SITES = ["larepublica.pe", "elcomercio.pe", "rpp.pe", "ojo-publico.com", "idl-reporteros.pe",
              "andina.pe", "infobae.com"]
FIRST = ["María", "José", "Rocío", "Ángel", "Lucía", "Martín", "Sofía", "Raúl", "Inés", "Jesús",
         "Ñusta", "Iñaki", "Begoña", "Andrés", "Verónica", "Óscar", "Mónica", "Julián", "Camila",
         "Sebastián", "Ana", "Luis", "Carmen", "Diego", "Valeria", "Hugo", "Elena", "Tomás",
         "Emily", "James", "Sarah", "Michael", "Olivia", "Daniel", "Grace", "Peter", "Hannah"]
LAST = ["Quispe", "Mamani", "Huamán", "Flores", "Sánchez", "Rodríguez", "García", "Ramírez",
        "Chávez", "Torres", "Núñez", "Peña", "Cárdenas", "Gutiérrez", "Yupanqui", "Condori",
        "Castañeda", "Muñoz", "Ibáñez", "Smith", "Johnson", "Brown", "Miller", "Davis"]
OUTLETS = ["La República", "El Comercio", "RPP Noticias", "Ojo Público", "IDL-Reporteros",
           "Agencia Andina", "Infobae Perú", "Peru Reports", "Latin America Daily"]
MASTODON_HOSTS = ["mastodon.social", "mstdn.pe", "mas.to", "mastodon.lat"]


def fold(text):
    """Lower case without accents on vowels (ñ is kept), as the classifier compares text."""
    out = []
    for ch in unicodedata.normalize("NFC", text).casefold():
        if ch == "ñ":
            out.append(ch)
            continue
        base = unicodedata.normalize("NFD", ch)
        out.append("".join(c for c in base if not unicodedata.combining(c)))
    return "".join(out)


def tokens(text):
    """Words of text, folded, plus the CamelCase and digit parts of each hashtag."""
    toks = []
    for m in re.finditer(r"#?\w+", text):
        word = m.group(0)
        if word.startswith("#"):
            word = word[1:]
            toks.append(fold(word))
            parts = re.findall(r"[A-ZÁÉÍÓÚÑ]?[a-záéíóúüñ]+|[A-ZÁÉÍÓÚÑ]+(?![a-z])|\d+", word)
            if len(parts) > 1:
                toks.extend(fold(p) for p in parts)
            continue
        toks.append(fold(word))
    return toks


def load_keywords(path):
    """{"team/topic": [keyword, ...]} from the demo config."""
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    return {"%s/%s" % (team["id"], t["id"]): t["keywords"]
            for team in cfg["teams"] for t in team["topics"]}


def matches(keyword, text_tokens):
    words = tokens(keyword.lstrip("#"))
    n = len(words)
    return any(text_tokens[i:i + n] == words for i in range(len(text_tokens) - n + 1))


def topics_of(text, keywords):
    toks = tokens(text)
    return {key for key, kws in keywords.items() if any(matches(k, toks) for k in kws)}


def mentions_nothing(text, keywords):
    """Stricter than topics_of: no keyword even as a substring (e.g. 'voto' in 'devoto')."""
    flat = fold(text)
    return all(fold(k.lstrip("#")) not in flat for kws in keywords.values() for k in kws)


def weighted(rng, pairs):
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for value, w in pairs:
        x -= w
        if x <= 0:
            return value
    return pairs[-1][0]


def ascii_handle(name):
    flat = unicodedata.normalize("NFD", name.replace("ñ", "n").replace("Ñ", "N"))
    bare = "".join(c for c in flat if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]", "", bare.lower())


def make_authors(rng):
    """N_AUTHORS authors; rank 1 is the most followed and the most active (Zipf-like)."""
    authors = []
    used = set()
    for rank in range(1, N_AUTHORS + 1):
        platform = weighted(rng, PLATFORMS)
        if platform == "rss":
            name = rng.choice(OUTLETS)
            base = ascii_handle(name)
        else:
            name = "%s %s" % (rng.choice(FIRST), rng.choice(LAST))
            base = ascii_handle(name.split()[0]) + "_" + ascii_handle(name.split()[1])[:6]
        handle = base
        n = 2
        while (platform, handle) in used:
            handle = "%s%d" % (base, n)
            n += 1
        used.add((platform, handle))
        if platform == "mastodon":
            full = "@%s@%s" % (handle, rng.choice(MASTODON_HOSTS))
        elif platform == "bluesky":
            full = "%s.bsky.social" % handle
        elif platform == "reddit":
            full = "u/%s" % handle
        else:
            full = rng.choice(NEWS_SITES)
        followers = int(250000 / rank ** 1.15 * rng.uniform(0.6, 1.4)) + rng.randint(3, 40)
        authors.append({"handle": full, "name": name, "followers": followers,
                        "platform": platform, "activity": 1.0 / rank ** 0.6})
    return authors


def pick_time(rng):
    """A moment of the demo week (Lima time) following the day and hour weights."""
    day = weighted(rng, list(enumerate(DAY_WEIGHTS)))
    hour = weighted(rng, list(enumerate(HOUR_WEIGHTS)))
    return WEEK_START + dt.timedelta(days=day, hours=hour, minutes=rng.randrange(60),
                                     seconds=rng.randrange(60))


def pick_burst_time(rng):
    """Inside the burst hour, densest in its middle (the vote itself)."""
    minute = min(BURST_MINUTES - 1, max(0, int(rng.triangular(0, BURST_MINUTES, 35))))
    return BURST_START + dt.timedelta(minutes=minute, seconds=rng.randrange(60))


def fill(rng, template, lang, form, mention_handle):
    text = template.format(
        k=form, K=form[:1].upper() + form[1:], e=rng.choice(EMOJI), place=rng.choice(PLACES),
        url="https://%s/%s/%d" % (rng.choice(NEWS_SITES), "nota" if lang == "es" else "news",
                                  rng.randrange(10000, 99999)),
        pct=rng.randint(12, 87), hh=rng.randint(9, 20), mention=mention_handle)
    return text


def vary(rng, text):
    """Some people shout, some never type accents."""
    r = rng.random()
    if r < 0.05:
        return text.upper()
    if r < 0.15:
        bare = "".join(c for c in unicodedata.normalize("NFD", text)
                       if not unicodedata.combining(c) or c == "\u0303")  # keeps the ñ
        return unicodedata.normalize("NFC", bare)
    return text


def post_fields(rng, seq, when, author, text, lang):
    """The JSON object of one post."""
    platform = author["platform"]
    handle = author["handle"]
    if platform == "mastodon":
        pid = str(113500000000000000 + seq * 7919)
        user, host = handle[1:].split("@")
        url = "https://%s/@%s/%s" % (host, user, pid)
    elif platform == "bluesky":
        pid = "at://did:plc:demo%06d/app.bsky.feed.post/3l%08x" % (seq % 997, seq)
        url = "https://bsky.app/profile/%s/post/3l%08x" % (handle, seq)
    elif platform == "reddit":
        pid = "t3_%07x" % (0x1a00000 + seq)
        url = "https://www.reddit.com/r/PERU/comments/%s/" % pid[3:]
    else:
        pid = "https://%s/noticia/%d" % (handle, 900000 + seq)
        url = pid
    likes = int(rng.paretovariate(1.6) * (author["followers"] ** 0.35)) - 1
    hashtags = [m[1:] for m in re.findall(r"#\w+", text)]
    mentions = [m[1:].rstrip(".") for m in re.findall(r"(?<![\w/])@[\w.]+(?:@[\w.]+\w)?", text)]
    post = {
        "id": pid,
        "platform": platform,
        "author": {"handle": handle, "name": author["name"], "followers": author["followers"]},
        "text": text,
        "lang": lang,
        "url": url,
        "created_at": when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "likes": likes,
        "reposts": likes // rng.randint(3, 9),
        "replies": likes // rng.randint(4, 12),
        "hashtags": hashtags,
        "mentions": mentions,
    }
    if platform == "reddit":
        del post["lang"]  # reddit gives no language hint
    return post


class Generator:
    def __init__(self, seed, keywords):
        self.rng = Random(seed)
        self.keywords = keywords
        self.authors = make_authors(self.rng)
        self.activity = [(a, a["activity"]) for a in self.authors]
        self.seq = 0

    def mention(self):
        a = self.rng.choice(self.authors[:40])
        if a["platform"] == "mastodon":
            return a["handle"]
        return "@" + a["handle"].split("/")[-1].split(".")[0]

    def topic_text(self, topic, lang):
        rng = self.rng
        template = rng.choice(TEMPLATES[lang])
        text = fill(rng, template, lang, rng.choice(FORMS[topic][lang]), self.mention())
        if rng.random() < 0.5:
            text += " #" + rng.choice(TOPIC_TAGS[topic])
        if rng.random() < 0.12:
            other = rng.choice([t for t in FORMS if t != topic])
            text += (" Y también {}." if lang == "es" else " And {} too.").format(
                rng.choice(FORMS[other][lang]))
        return vary(rng, text)

    def one(self, when, lang, text, want, strict_none=False):
        """Checks the text against the config's keywords, then builds the post."""
        got = topics_of(text, self.keywords)
        if strict_none and (got or not mentions_nothing(text, self.keywords)):
            raise AssertionError("off-topic text matches a topic: %r -> %s" % (text, got))
        if want is not None and want not in got:
            raise AssertionError("text does not match %s: %r" % (want, text))
        self.seq += 1
        author = weighted(self.rng, self.activity)
        return post_fields(self.rng, self.seq, when, author, text, lang), got, lang

    def regular(self):
        rng = self.rng
        lang = "es" if rng.random() < SPANISH_SHARE else "en"
        when = pick_time(rng)
        if rng.random() < NO_TOPIC_SHARE:
            text = fill(rng, rng.choice(OFF_TOPIC[lang]), lang, "", self.mention())
            return self.one(when, lang, vary(rng, text), None, strict_none=True)
        topic = weighted(rng, list(TOPIC_WEIGHTS.items()))
        return self.one(when, lang, self.topic_text(topic, lang), topic)

    def burst(self):
        rng = self.rng
        lang = "es" if rng.random() < 0.8 else "en"
        text = fill(rng, rng.choice(BURST_TEMPLATES[lang]), lang, "", self.mention())
        post, got, lang = self.one(pick_burst_time(rng), lang, vary(rng, text),
                                   "gobernanza/congreso")
        post["likes"] *= 3
        post["reposts"] *= 4
        return post, got, lang


def bad_lines(n):
    """n malformed lines of different kinds, for exercising the collector."""
    kinds = [
        lambda i: "this is not json at all %d" % i,
        lambda i: '{"id": "bad-%d", "platform": "mastodon", "text": "sin fecha"}' % i,
        lambda i: '{"id": "bad-%d", "platform": "rss", "text": "x", "created_at": "ayer"}' % i,
        lambda i: '{"id": "bad-%d", "platform": "bluesky", "text": "corte' % i,
        lambda i: '{"id": "", "platform": "reddit", "text": "x", "created_at": 0}',
        lambda i: '{"id": "bad-%d", "platform": "reddit", "text": "x", "likes": -1, '
                  '"created_at": "2026-11-18T10:00:00Z"}' % i,
        lambda i: '["an", "array", %d]' % i,
    ]
    return [kinds[i % len(kinds)](i) for i in range(n)]


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="-", help="output file (default: stdout)")
    ap.add_argument("--count", type=int, default=3000, help="regular posts (default 3000)")
    ap.add_argument("--burst", type=int, default=300,
                    help="extra posts in the Thursday 15:00-16:00 burst (default 300, 0 = none)")
    ap.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")
    ap.add_argument("--bad", type=int, default=0,
                    help="append this many malformed lines (default 0: clean data)")
    ap.add_argument("--config", default=os.path.join(here, "escucha.json"),
                    help="config whose topic keywords the texts are checked against")
    ap.add_argument("--summary", action="store_true", help="print counts per topic to stderr")
    ap.add_argument("--not-after", default=None, metavar="TIME",
                    help='leave out posts dated after TIME (ISO 8601 with a zone, or "now")')
    args = ap.parse_args(argv)
    if args.count < 0 or args.burst < 0 or args.bad < 0:
        ap.error("--count, --burst and --bad must not be negative")
    not_after = None
    if args.not_after == "now":
        not_after = dt.datetime.now(dt.timezone.utc)
    elif args.not_after is not None:
        try:
            not_after = dt.datetime.fromisoformat(args.not_after.replace("Z", "+00:00"))
        except ValueError:
            ap.error("--not-after: not an ISO 8601 time: %r" % args.not_after)
        if not_after.tzinfo is None:
            ap.error("--not-after: give a time zone (e.g. 2026-11-22T12:00:00Z)")

    gen = Generator(args.seed, load_keywords(args.config))
    made = [gen.regular() for _ in range(args.count)]
    made += [gen.burst() for _ in range(args.burst)]
    if not_after is not None:
        cut = not_after.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        made = [m for m in made if m[0]["created_at"] <= cut]
    made.sort(key=lambda m: (m[0]["created_at"], m[0]["id"]))
    lines = [json.dumps(p, ensure_ascii=False, separators=(",", ":")) for p, _, _ in made]
    lines += bad_lines(args.bad)

    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if args.out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        parent = os.path.dirname(args.out)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(args.out, "wb") as f:
            f.write(data)

    if args.summary:
        per_topic = {}
        none = 0
        spanish = 0
        for _, got, lang in made:
            none += not got
            spanish += lang == "es"
            for t in got:
                per_topic[t] = per_topic.get(t, 0) + 1
        total = len(made)
        print("posts=%d bad=%d no_topic=%d (%.1f%%) es=%d authors=%d"
              % (total, args.bad, none, 100.0 * none / max(total, 1), spanish, N_AUTHORS),
              file=sys.stderr)
        for t in sorted(per_topic):
            print("  %-28s %5d" % (t, per_topic[t]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
