"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/) from the fixtures the
tests already use, so the seeds follow the platforms' real shapes. The output is committed; run
this again (with Debian's /usr/bin/python3, standard library only) after changing a source:

  /usr/bin/python3 tests/fuzz/make_seeds.py

Sources of the seeds:
  - tests/data/platforms/*.json, the platform fixture's scenarios: every route's answer (status,
    headers, body, generated payloads and feeds, server-sent event streams) as a raw HTTP answer,
    and each scenario's answers joined with the fuzz_col.h separator (paging);
  - shared/reference/platforms.md: the JSON, XML and event-stream examples of each platform;
  - tests/data/classifier/queries.jsonl and docs/query-language.md: queries (+ post texts);
  - hand-written CSV exports and ingest bodies modelled on src_csv_test.c and src_ingest_test.c.
Only the targets listed in TARGETS are written (the older corpora of msg_decode, post_json and
cfg_load are kept as they are, and post_json's seeds are reused for ingest). Files named
regress-* are inputs that once crashed a target (docs/reliability.md#fuzzing); they are kept.
"""

import hashlib
import json
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
import platform_fixture as pf  # noqa: E402

CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
SEP = "\n--next--\n"  # FUZZ_COL_SEP in fuzz_col.h
TARGETS = ["mastodon", "mastodon_stream", "bluesky", "reddit", "hn", "x", "youtube", "lemmy",
           "rss", "csv", "ingest", "query", "text", "html"]
# "{base}" of the fixture becomes the URL the fuzz target's source is configured with, so Link
# headers stay on the same origin.
BASE = {"mastodon": "https://mastodon.example", "mastodon_stream": "https://mastodon.example",
        "bluesky": "https://bsky.example", "reddit": "https://oauth.reddit.example",
        "hn": "https://hn.example", "x": "https://x.example", "youtube": "https://yt.example",
        "lemmy": "https://lemmy.example", "rss": "https://blog.example"}
REASON = {200: "OK", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
          403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}
MAX_SEED = 16384

seeds = {t: {} for t in TARGETS}


def add(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_SEED or data in seeds[target].values():
        return
    seeds[target][re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]] = data


def sse_of(route):
    out = []
    for piece in route["stream"]:
        if "raw" in piece:
            out.append(piece["raw"])
        else:
            i = piece["update"]
            st = pf.gen_mastodon(i, pf.T0 + i * pf.STEP)
            out.append("event: update\ndata: %s\n\n" % json.dumps(st, ensure_ascii=False))
    return "".join(out)


def answer_of(route, target):
    """The route's answer as fuzz_col.h takes it: a raw HTTP answer."""
    status = route.get("status", 200)
    fx = pf.Fixture({"routes": []}, None)
    fx.base = BASE[target]
    if "stream" in route:
        body, ctype = sse_of(route).encode("utf-8"), "text/event-stream"
    elif status == 304:
        body, ctype = b"", None
    else:
        body, ctype = fx.body_of(route)
    head = ["HTTP/1.1 %d %s" % (status, REASON.get(status, "Status"))]
    if ctype is not None:
        head.append("Content-Type: " + ctype)
    for k, v in route.get("headers", {}).items():
        v = str(v).replace("{base}", BASE[target])
        v = re.sub(r"\{now\+(\d+)\}", lambda m: str(1900000000 + int(m.group(1))), v)
        head.append("%s: %s" % (k, v))
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8") + body


def scenario_target(name):
    if name.startswith("mastodon"):
        return "mastodon"
    if name in ("rss_feed", "atom_feed"):
        return "rss"
    return name


def from_scenarios():
    pdir = os.path.join(ROOT, "tests", "data", "platforms")
    for fn in sorted(os.listdir(pdir)):
        if not fn.endswith(".json"):
            continue
        name = fn[:-5]
        target = scenario_target(name)
        if target not in seeds:
            continue
        with open(os.path.join(pdir, fn), encoding="utf-8") as f:
            sc = json.load(f)
        routes = sc.get("routes", [])
        if "default" in sc:
            routes = routes + [sc["default"]]
        chain = {"mastodon": [], "mastodon_stream": []}
        chain[target] = []
        for n, r in enumerate(routes):
            t = "mastodon_stream" if "stream" in r else target
            if t == "mastodon" and r.get("path", "").startswith("/api/v1/streaming"):
                t = "mastodon_stream"
            if t not in seeds:
                continue
            # log-in answers are canned by the fuzz targets; keep them as bodies anyway
            a = answer_of(r, t)
            add(t, "%s-r%d" % (name, n), a)
            chain.setdefault(t, []).append(a)
        for t, answers in chain.items():
            if len(answers) > 1:
                add(t, "%s-all" % name, SEP.encode("utf-8").join(answers[:4]))


def from_reference():
    path = os.path.join(os.path.dirname(ROOT), "shared", "reference", "platforms.md")
    if not os.path.exists(path):
        print("make_seeds: %s not found, skipped" % path, file=sys.stderr)
        return
    section = {"1": "mastodon", "2": "bluesky", "3": "reddit", "4": "hn", "5": "rss", "6": "x",
               "7": "youtube", "8": "lemmy"}
    cur = None
    block = None
    lang = None
    n = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"^## (\d+)\.", line)
            if m:
                cur = section.get(m.group(1))
                continue
            m = re.match(r"^```(\w*)", line)
            if m and block is None:
                block, lang = [], m.group(1)
                continue
            if m and block is not None:
                text = "".join(block)
                n += 1
                if cur is not None:
                    if lang == "json" and cur != "rss":
                        add(cur, "reference-%d" % n, text)
                    elif lang == "xml" and cur == "rss":
                        add("rss", "reference-%d" % n, text)
                    elif lang == "text" and cur == "mastodon" and "event:" in text:
                        add("mastodon_stream", "reference-%d" % n, text)
                    elif lang == "html":
                        add("html", "reference-%d" % n, text)
                block = None
                continue
            if block is not None:
                block.append(line)


def extra_payloads():
    t = pf.T0
    # Mastodon: a boost with a content warning, missing and odd fields
    st = pf.gen_mastodon(8, t)
    boost = dict(pf.gen_mastodon(9, t), reblog=st, spoiler_text="cw: elecciones")
    add("mastodon", "boost-cw", json.dumps([boost, {"id": "5", "content": "<p>no uri</p>"}]))
    add("mastodon", "not-array", '{"error":"not a list"}')
    add("mastodon", "html-answer", "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>")
    add("mastodon_stream", "multiline", "event: update\r\ndata: {\"id\":\"1\",\r\ndata: \"uri\":"
        "\"u\",\"created_at\":\"2026-01-01T00:00:00Z\",\"content\":\"<b>x</b>\"}\r\n\r\n"
        "event: status.update\ndata: %s\n\nevent: delete\ndata: 1\n\n:thump\n"
        % json.dumps(pf.gen_mastodon(3, t)))
    # Bluesky: facets pointing past the text, an expired token then a page
    post = pf.gen_bluesky(1, t)
    post["record"]["facets"].append({"index": {"byteStart": 3, "byteEnd": 999},
                                     "features": [{"$type": "app.bsky.richtext.facet#mention",
                                                   "did": "did:plc:x"}]})
    add("bluesky", "facets-out-of-range", json.dumps({"posts": [post], "cursor": "c1"}))
    add("bluesky", "expired-then-page",
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n"
        '{"error":"ExpiredToken","message":"Token has expired"}' + SEP
        + json.dumps(pf.generate({"kind": "bluesky", "ids": [1, 2]})))
    # YouTube: both kinds, and the quota error
    add("youtube", "comments", json.dumps(pf.generate({"kind": "youtube_comments",
                                                       "ids": [1, 2], "next": "p2"})))
    add("youtube", "videos", json.dumps(pf.generate({"kind": "youtube", "ids": [1, 2],
                                                     "next": "p2"})))
    add("youtube", "quota", "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n"
        '{"error":{"code":403,"message":"quota","errors":[{"reason":"quotaExceeded",'
        '"domain":"youtube.quota"}]}}')
    # X: a long post (note_tweet) and a page with no data
    tw = pf.gen_x(1, t)
    tw["note_tweet"] = {"text": "largo " * 100, "entities": {"hashtags": [{"tag": "largo"}]}}
    add("x", "note-tweet", json.dumps({"data": [tw], "includes": {"users": []},
                                       "meta": {"newest_id": tw["id"], "result_count": 1}}))
    add("x", "empty", '{"meta":{"result_count":0}}')
    # HN, Reddit, Lemmy: paging
    add("hn", "two-pages", json.dumps(pf.generate({"kind": "hn", "ids": [4, 6], "nb_pages": 2}))
        + SEP + json.dumps(pf.generate({"kind": "hn", "ids": [1, 3], "page": 1, "nb_pages": 2})))
    add("reddit", "two-pages",
        json.dumps(pf.generate({"kind": "reddit", "ids": [3, 4], "next": "t3_a"})) + SEP
        + json.dumps(pf.generate({"kind": "reddit", "ids": [1, 2]})))
    add("lemmy", "two-pages",
        json.dumps(pf.generate({"kind": "lemmy", "ids": [3, 4], "next": "p2"})) + SEP
        + json.dumps(pf.generate({"kind": "lemmy", "ids": [1, 2]})))
    # feeds: RSS 1.0, CDATA, a 304, an Atom feed with xhtml content
    add("rss", "rss", pf.feed({"kind": "rss", "ids": [1, 2]}))
    add("rss", "atom", pf.feed({"kind": "atom", "ids": [1, 2]}))
    add("rss", "rdf", '<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/'
        'elements/1.1/"><channel rdf:about="x"><title>t</title></channel><item rdf:about="'
        'https://blog.example/1"><title>uno</title><link>https://blog.example/1</link>'
        '<dc:date>2026-01-01T00:00:00Z</dc:date><description>d &amp; m</description></item>'
        '</rdf:RDF>')
    add("rss", "cdata-xhtml", '<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>e1</id>'
        '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">T <b>1</b></div></title>'
        '<updated>2026-01-01T00:00:00+02:00</updated><content type="xhtml"><div xmlns="http://'
        'www.w3.org/1999/xhtml"><p>c<br/>d</p></div></content></entry><entry><title>sin id'
        '</title><summary><![CDATA[<p>a &amp; b</p>]]></summary></entry></feed>')
    add("rss", "not-modified", "HTTP/1.1 304 Not Modified\r\nETag: \"v2\"\r\n\r\n")
    add("rss", "etag", "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nETag: \"v1\"\r\n"
        "Last-Modified: Mon, 03 Feb 2025 14:05:09 GMT\r\n\r\n"
        + pf.feed({"kind": "rss", "ids": [3, 3]}))


def csv_seeds():
    head = "id,text,created_at,author,name,followers,likes,reposts,replies,url,lang\r\n"
    add("csv", "mapped", head
        + "1001,\"Hola, \"\"mundo\"\"\",2025-03-01T10:00:00Z,@ana,Ana,12,3,1,0,https://x.com/a/1"
        ",es\r\n"
        "1002,\"l\u00ednea uno\nl\u00ednea dos\",2025-03-02 08:30:00,@b\u00e9a,,0,,,,,\r\n"
        "1003,\"caf\u00e9 \U0001f389, ma\u00f1ana\",1741000000,@c,C,5,1,,,,pt\r\n"
        "1004,texto,not-a-date,@d,,1,1,,,,\r\n"
        "1005,\"\",1741100000123,@e,,7,2,x,,,\r\n")
    add("csv", "bad-rows", "id,text,created_at\n"
        "a1,uno,2025-01-01T00:00:00Z\n"
        "a2,\"dos, tres\",2025-01-01T00:00:00Z,sobra\n"
        "a3,,2025-01-01T00:00:00Z\n"
        ",vacio,2025-01-01T00:00:00Z\n"
        "a5,\"cinco\" y m\u00e1s,2025-01-01T00:00:00Z\n"
        "a6,se\"is,2025-01-01T00:00:00Z\n"
        "a4,cuatro,2025-01-02T00:00:00+01:00")
    add("csv", "semicolon-bom", "\ufeffid;text;created_at;author\n"
        "b1;\"uno; dos, tres\";2025-06-01 12:00:00;@x\n"
        "b2;zwei;2025-06-01T12:00:00Z;\n")
    add("csv", "unterminated", "id,text,created_at\n"
        "c1,bien,2025-01-01T00:00:00Z\n"
        "c2,\"sin cierre,2025-01-01T00:00:00Z\n")
    add("csv", "header-missing-column", "Tweet ID,Date,Username,Text\n1,2025-03-01,@a,t\n")


def ingest_seeds():
    pdir = os.path.join(CORPUS, "post_json")
    posts = []
    for fn in sorted(os.listdir(pdir)):
        with open(os.path.join(pdir, fn), "rb") as f:
            data = f.read()
        add("ingest", "post-" + fn, data)
        posts.append(data.strip())
    add("ingest", "array", b"[" + b",".join(posts) + b',{"id":"bad"},17,null]')
    add("ingest", "jsonl", b"\n".join(posts) + b'\n{"id":"l1","platform":"rss",\n\n')
    add("ingest", "array-min", '[{"id":"a0","platform":"x","text":"cero","created_at":'
        '1763301780000},{"id":"a1","platform":"x","text":"uno","created_at":"2026-01-01T00:00:00Z"'
        ',"hashtags":["t"],"mentions":["m"],"author":{"handle":"@h","followers":3}}]')
    add("ingest", "malformed", '{"id":"m1","platform":')
    add("ingest", "blank", " \r\n\t\n")


def query_seeds():
    texts = set()
    with open(os.path.join(ROOT, "tests", "data", "classifier", "queries.jsonl"),
              encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("//"):
                continue
            case = json.loads(line)
            q = case.get("query")
            if q is None:
                kws = case.get("keywords") or []
                q = kws[0] if kws else None
            if q is None:
                continue
            text = case.get("text")
            add("query", "case-%03d" % n, q if text is None else q + "\n---\n" + text)
            if text is not None:
                texts.add(text)
            if case.get("exclude"):
                add("query", "case-%03d-exclude" % n, case["exclude"])
    with open(os.path.join(ROOT, "docs", "query-language.md"), encoding="utf-8") as f:
        doc = f.read()
    n = 0
    for block in re.findall(r"```\n(.*?)```", doc, re.S):
        for line in block.splitlines():
            line = line.split("\u2192")[0].strip()
            if line and not line.startswith("$") and not line.startswith("error:") \
                    and not line.startswith("warning:") and line.strip("^ "):
                n += 1
                add("query", "doc-%03d" % n, line)
    for m in re.finditer(r'"(?:query|exclude)": "((?:[^"\\]|\\.)*)"', doc):
        n += 1
        add("query", "doc-%03d" % n, json.loads('"%s"' % m.group(1)))
    # the post texts of the conformance table, for the normaliser
    for text in sorted(texts):
        add("text", "case-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:10], text)


def text_seeds():
    add("text", "mastodon", pf.item_text(1) + " @ana@mastodon.social https://gob.pe/n?x=1")
    add("text", "tricky", "ELECCI\u00d3N A\u00d1O n\u0303 caf\u0065\u0301 \ufb01 \u2019s "
        "l\u2019eau #Elecci\u00f3nPer\u00fa2026 #RustLang_es @user@domain \u200b\u00ad "
        "www.x.pe/a")
    add("text", "invalid-utf8", b"caf\xc3 \xed\xa0\x80 \xc0\x80 \xff #t\xc3\xa9 @a\xe2\x80")
    # HTML helpers: the platforms' HTML bodies, dates, Link headers, URLs
    add("html", "mastodon", pf.gen_mastodon(1, pf.T0)["content"])
    add("html", "hn", pf.gen_hn(1, pf.T0)["comment_text"])
    add("html", "youtube", pf.gen_youtube_comment(1, pf.T0)["snippet"]["topLevelComment"]
        ["snippet"]["textDisplay"])
    add("html", "youtube-title", pf.gen_youtube(1, pf.T0)["snippet"]["title"])
    add("html", "rss", "<p>Resumen <b>1</b> &amp; m&#225;s</p><script>x()</script><pre>a\n b"
        "</pre><ul><li>uno</li><li>dos</li></ul><blockquote>cita</blockquote>")
    add("html", "rfc822", "Mon, 03 Feb 2025 14:05:09 GMT")
    add("html", "rfc822-zone", "3 Feb 2025 14:05 -0530")
    add("html", "rfc3339", "2026-09-21T15:00:00.123456+05:30")
    add("html", "since", "2026-09-21")
    add("html", "link", '<https://mastodon.example/api/v1/timelines/tag/t?max_id=1>; rel="next", '
        '<https://mastodon.example/api/v1/timelines/tag/t?min_id=3>; rel="prev"')
    add("html", "url-secret", "https://yt.example/youtube/v3/search?part=snippet&key=AIza&q=x"
        "&access_token=t#frag")
    add("html", "ids", "113900000000000001,0099,abc")


def main():
    from_scenarios()
    from_reference()
    extra_payloads()
    csv_seeds()
    ingest_seeds()
    query_seeds()
    text_seeds()
    for t in TARGETS:
        d = os.path.join(CORPUS, t)
        os.makedirs(d, exist_ok=True)
        for fn in os.listdir(d):
            if not fn.startswith("regress-"):  # inputs that once crashed stay
                os.remove(os.path.join(d, fn))
        for name, data in sorted(seeds[t].items()):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print("make_seeds: %-16s %4d seeds" % (t, len(seeds[t])))


if __name__ == "__main__":
    main()
