#!/usr/bin/env bash
# Renders docs/img/digest.png: a weekly digest of a demo team, built by the real
# escucha-notifier from demo numbers loaded into a throw-away redis-server, its HTML part shown
# by headless Chromium (Debian package "chromium") with the inline charts in place.
# Usage: docs/img/make-digest-screenshot.sh [BUILD_DIR]   (default: build)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$repo/build}
bin=$build/notifier/escucha-notifier
work=$(mktemp -d)
trap 'kill "$(cat "$work/redis.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT

redis-server --port 0 --unixsocket "$work/r.sock" --save "" --appendonly no \
    --daemonize yes --pidfile "$work/redis.pid" --dir "$work" >/dev/null
for _ in $(seq 50); do [ -S "$work/r.sock" ] && break; sleep 0.1; done

# Demo numbers for ISO week 2026-W47 in America/Lima (UTC-5), written the way the aggregator
# writes them (docs/redis-schema.md), as raw RESP for redis-cli --pipe.
/usr/bin/python3 - "$work" <<'EOF' | redis-cli -s "$work/r.sock" --pipe >/dev/null
import json, sys, random
random.seed(47)
out = sys.stdout.buffer
def cmd(*args):
    out.write(b"*%d\r\n" % len(args))
    for a in args:
        b = str(a).encode()
        out.write(b"$%d\r\n%s\r\n" % (len(b), b))
DAY = 86400
mon = 1794805200                   # Mon 16 Nov 2026 00:00 in Lima (05:00 UTC)
topics = {
    "gobernanza/congreso": ([120, 95, 486, 214, 150, 61, 45], [101, 90, 112, 104, 98, 40, 38]),
    "gobernanza/elecciones": ([58, 71, 64, 83, 77, 31, 26], [55, 60, 58, 62, 70, 28, 20]),
}
langs = [("es", .86), ("qu", .06), ("en", .05), ("pt", .03)]
plats = [("x", .52), ("facebook", .21), ("mastodon", .15), ("bluesky", .12)]
for key, (cur, prev) in topics.items():
    for week, series in ((0, cur), (-1, prev)):
        for d, n in enumerate(series):
            hours = [9, 11, 13, 15, 18, 20, 22]
            share = [random.random() + .3 for _ in hours]
            s = sum(share)
            left = n
            for i, h in enumerate(hours):
                k = left if i == len(hours) - 1 else int(n * share[i] / s)
                left -= k
                t = mon + (week * 7 + d) * DAY + h * 3600
                hk = "demo:c:{%s}:h:%d" % (key, t)
                likes, reposts, replies = k * 9, k * 3, k * 2
                f = ["posts", k, "reach", k * 2350, "likes", likes, "reposts", reposts,
                     "replies", replies, "engagement", likes + reposts + replies]
                neg = .45 if (key.endswith("congreso") and d == 2) else .22
                f += ["sentiment_pos", int(k * .18), "sentiment_neg", int(k * neg),
                      "sentiment_neu", k - int(k * .18) - int(k * neg)]
                for name, p in langs:
                    f += ["lang:" + name, round(k * p)]
                for name, p in plats:
                    f += ["platform:" + name, round(k * p)]
                cmd("HSET", hk, *f)
    for d in range(7):
        day = (mon + d * DAY) // DAY * DAY
        top = "demo:top:{%s}:%%s:%d" % (key, day)
        if key.endswith("congreso"):
            cmd("ZADD", top % "hashtags", 40 + d * 3, "congreso", 12 + (30 if d == 2 else 0),
                "vacancia", 9, "mesadirectiva", 6, "presupuesto2027", 4, "peru")
            cmd("ZADD", top % "terms", 55, "congreso", 30 + (60 if d == 2 else 0), "vacancia",
                21, "pleno", 14, "votación", 9, "presidenta")
            cmd("ZADD", top % "authors", 9.5, "@rpp", 7.25, "@elcomercio_peru", 6.0,
                "@idl_reporteros", 4.5, "@congresoperu", 3.0, "@ojo_publico")
            cmd("HSET", (top % "authors") + ":info", "posts:@rpp", 6, "posts:@elcomercio_peru", 5,
                "posts:@idl_reporteros", 3, "posts:@congresoperu", 4, "posts:@ojo_publico", 2)
        else:
            cmd("ZADD", top % "hashtags", 20 + d, "elecciones2026", 11, "jne", 7, "onpe", 5,
                "debate")
            cmd("ZADD", top % "terms", 25, "candidatos", 18, "padrón", 12, "debate")
            cmd("ZADD", top % "authors", 5.5, "@jne_peru", 4.0, "@onpe_oficial", 2.5,
                "@transparencia")
    posts = [
        ("gobernanza/congreso", 2, 14, "x:1861", "RPP Noticias",
         "El Pleno del Congreso debate hoy la moción de vacancia presidencial. Sigue la "
         "sesión en vivo y el conteo de votos.", "https://x.com/rpp/status/1861", 2410, 880, 512),
        ("gobernanza/congreso", 2, 16, "facebook:77", "El Comercio",
         "Vacancia: estos son los 87 votos que necesita la moción y cómo se reparten las "
         "bancadas.", "https://facebook.com/elcomercio/posts/77", 1320, 406, 188),
        ("gobernanza/congreso", 3, 10, "mastodon:9", "IDL-Reporteros",
         "Investigación: la Mesa Directiva aprobó gastos de representación sin sustento en "
         "tres de cada cinco viajes.", "https://mastodon.social/@idl/9", 980, 350, 97),
        ("gobernanza/congreso", 0, 11, "x:1840", "Congreso del Perú",
         "La Comisión de Presupuesto inicia el debate del dictamen del Presupuesto 2027.",
         "https://x.com/congresoperu/status/1840", 610, 140, 75),
        ("gobernanza/congreso", 4, 19, "bluesky:3", "Ojo Público",
         "¿Qué cambió en la ley de colaboración eficaz? Lo explicamos en 5 puntos.",
         "https://bsky.app/profile/ojo-publico/post/3", 455, 190, 41),
        ("gobernanza/elecciones", 3, 12, "x:2001", "JNE Perú",
         "El JNE publica la lista de candidaturas admitidas para las Elecciones Generales 2026.",
         "https://x.com/jne_peru/status/2001", 1210, 530, 120),
        ("gobernanza/elecciones", 1, 9, "x:1990", "ONPE",
         "Consulta tu local de votación con tu DNI en nuestra web oficial.",
         "https://x.com/onpe_oficial/status/1990", 890, 610, 64),
    ]
    for k2, d, h, member, author, text, url, likes, reposts, replies in posts:
        if k2 != key:
            continue
        day = (mon + d * DAY) // DAY * DAY
        eng = likes + reposts + replies
        cmd("ZADD", "demo:top:{%s}:posts:%d" % (key, day), eng, member)
        cmd("HSET", "demo:post:{%s}:%s" % (key, member), "text", text, "author", author,
            "author_name", author, "url", url, "platform", member.split(":")[0], "created_at",
            (mon + d * DAY + h * 3600) * 1000, "likes", likes, "reposts", reposts, "replies",
            replies, "engagement", eng, "followers", 250000)
alerts = [
    ("congreso", "Congreso", 2, 14 * 60 + 30, 212, 18.5,
     ["vacancia", "pleno", "#vacancia", "votos", "moción"],
     "Ya empezó la votación de la vacancia en el Pleno, hay más de 80 votos a favor",
     "@rpp", "https://x.com/rpp/status/1862"),
    ("elecciones", "Elecciones 2026", 3, 12 * 60, 64, 9.0,
     ["candidaturas", "jne", "admitidas"],
     "El JNE publica la lista de candidaturas admitidas", "@jne_peru",
     "https://x.com/jne_peru/status/2001"),
]
for topic, name, d, minute, observed, expected, terms, sample, who, url in alerts:
    ws = (mon + d * DAY + minute * 60) * 1000
    cmd("LPUSH", "demo:alerts:{gobernanza}", json.dumps({
        "id": "gobernanza/%s/%d" % (topic, ws), "team": "gobernanza", "topic": topic,
        "topic_name": name, "kind": "spike", "window_start": ws, "window_end": ws + 1800000,
        "observed": observed, "expected": expected, "score": observed / expected,
        "ts": ws + 1860000, "terms": terms, "samples": [sample], "sample_authors": [who],
        "sample_urls": [url]}, ensure_ascii=False))
EOF

cat >"$work/escucha.json" <<EOF
{ "deployment": "demo",
  "redis": { "unix_socket": "$work/r.sock", "prefix": "demo" },
  "teams": [ { "id": "gobernanza", "name": "Gobernanza Democrática", "language": "es",
               "timezone": "America/Lima", "recipients": ["gobernanza@example.org"],
               "topics": [ { "id": "congreso", "name": "Congreso", "keywords": ["congreso"] },
                           { "id": "elecciones", "name": "Elecciones 2026",
                             "keywords": ["elecciones"] } ] } ],
  "notifier": { "from": "escucha <escucha@example.org>" } }
EOF
"$bin" --config "$work/escucha.json" --digest gobernanza --period 2026-W47 \
    --to-file "$work/digest.eml" >/dev/null

# The HTML part with the charts saved next to it (cid: -> file name), as a mail client shows it.
/usr/bin/python3 - "$work" <<'EOF'
import email, email.policy, sys
work = sys.argv[1]
msg = email.message_from_bytes(open(work + "/digest.eml", "rb").read(),
                               policy=email.policy.default)
html = None
for part in msg.walk():
    if part.get_content_type() == "text/html":
        html = part.get_content()
    elif part.get_content_type() == "image/png":
        cid = part["Content-ID"].strip("<>")
        name = part.get_filename()
        open(work + "/" + name, "wb").write(part.get_payload(decode=True))
        html = html.replace("cid:" + cid, name)
open(work + "/digest.html", "w", encoding="utf-8").write(html)
EOF

mkdir -p "$repo/docs/img"
chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$(mktemp -d -p "$work")" --window-size=800,1800 \
    --screenshot="$repo/docs/img/digest.png" "file://$work/digest.html" 2>/dev/null
echo "wrote $repo/docs/img/digest.png"
