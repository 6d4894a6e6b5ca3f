"""A scriptable stand-in for the social platforms' HTTP APIs, for the collector's connector tests.

usage: platform_fixture.py SCENARIO.json [--log REQUESTS.jsonl]

Listens on 127.0.0.1 on a free port and prints "PORT <n>" as its first line of stdout. Every
request is appended to the log as one JSON line (time, method, path, query, headers, body,
route index) before it is answered. Standard library only (run with Debian's /usr/bin/python3).

The scenario is a JSON object:

  {"routes": [ROUTE, ...], "default": RESPONSE}

A request gets the first route whose conditions hold and whose uses are not spent:
  "method"   (default "GET"), "path" (exact, without the query),
  "query"    {name: value}: the parameter must equal value; null: must be absent; "*": present,
  "when_headers" {name: value}: the request header must equal value (null: must be absent),
  "times"    how many requests this route answers (default: unlimited).
The route (or "default", or a 404) is the RESPONSE:
  "status" (200), "headers" {name: value}, "content_type" ("application/json" for "json",
  "gen" and "feed" bodies), "delay_ms" (sleep before answering), "truncate" (send only this many
  body bytes although Content-Length announces all, then close), and one body:
  "json" (any JSON value), "body" (text), "gen" (a generated platform payload, below) or
  "feed" (a generated RSS/Atom document), or "stream": a list of pieces sent one by one with
  chunked transfer encoding, then the end of the body (server-sent events):
    {"raw": TEXT}            TEXT as it is (":thump\n\n", "event: delete\ndata: 1\n\n")
    {"update": I}            "event: update\ndata: <generated Mastodon status I>\n\n"
    {"update": I, "split": K} the same, cut after K bytes into two pieces
    each piece may have "delay_ms" (sleep before it); the route may have "hold_ms" (keep the
    stream open that long after the last piece, sending nothing).
"{base}" in header values and bodies becomes http://127.0.0.1:<port>; "{now+N}" in header values
becomes the Unix time N seconds from the moment of the answer (for rate-limit resets).

Generated payloads follow the shapes in shared/reference/platforms.md, one item per index:
  {"gen": {"kind": "mastodon", "ids": [FIRST, LAST]}}   statuses, newest first (LAST first)
  kinds: mastodon, hn, reddit, bluesky, x, youtube, youtube_comments, lemmy
  extra keys: "dup" (indexes repeated at the end of the list), "cursor"/"next" (the page cursor
  the platform returns: Bluesky cursor, Reddit after, X next_token, YouTube nextPageToken, Lemmy
  next_page), "nb_pages" (HN), "t0" (Unix seconds of index 0, default 1790000000), "step"
  (seconds between indexes, default 60).
  {"feed": {"kind": "rss" | "atom", "ids": [FIRST, LAST]}}
Item i has id "1000000000000<i>"-style ids (per platform), created at t0 + i*step, and a text
with non-ASCII letters and an emoji so tests can check they arrive intact: see item_text().
"""

import datetime as dt
import email.utils
import html
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.parse

T0 = 1790000000
STEP = 60


def item_text(i):
    """The plain text every generated item i carries (HTML-wrapped where the platform sends
    HTML)."""
    return "Post %d: año ñandú café 🎉 #rustlang" % i


def iso(ts, frac=True):
    d = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    if frac:
        return d.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def gen_mastodon(i, ts):
    sid = str(113900000000000000 + i)
    uri = "https://remote.example/users/u%d/statuses/%s" % (i % 5, sid)
    return {
        "id": sid, "uri": uri, "url": "https://remote.example/@u%d/%s" % (i % 5, sid),
        "created_at": iso(ts), "edited_at": None, "visibility": "public",
        "language": "es", "sensitive": False, "spoiler_text": "", "in_reply_to_id": None,
        "reblog": None,
        "content": ("<p>Post %d: a&ntilde;o &amp; ñandú café 🎉 <a href=\"https://remote.example/"
                    "tags/rustlang\" class=\"mention hashtag\" rel=\"tag\">#<span>rustlang</span>"
                    "</a></p><p>second&nbsp;paragraph<br>line two &lt;b&gt;</p>" % i),
        "replies_count": i % 3, "reblogs_count": i % 4, "favourites_count": i % 7,
        "account": {"id": str(1000 + i % 5), "username": "u%d" % (i % 5),
                    "acct": "u%d" % (i % 5) if i % 2 == 0 else "u%d@remote.example" % (i % 5),
                    "display_name": "Usuaria %d" % (i % 5), "followers_count": 100 + i},
        "mentions": [{"id": "1", "username": "bob", "acct": "bob@mastodon.example",
                      "url": "https://mastodon.example/@bob"}],
        "tags": [{"name": "rustlang", "url": "https://remote.example/tags/rustlang"}],
        "media_attachments": [], "card": None,
    }


def gen_hn(i, ts):
    hit = {"objectID": str(42900000 + i), "created_at": iso(ts, False), "created_at_i": ts,
           "author": "user%d" % (i % 4), "points": i, "num_comments": i % 9,
           "story_id": 42900000 + i, "_tags": ["story", "author_user%d" % (i % 4)]}
    if i % 2 == 0:
        hit.update({"title": "Post %d: año ñandú café 🎉 #rustlang" % i,
                    "url": "https://blog.example/%d" % i, "story_text": None})
    else:
        hit.update({"comment_text": "Post %d: a&#x27;o &lt;3 <i>ñandú</i> café 🎉 #rustlang<p>"
                                    "second" % i,
                    "story_title": "Story", "parent_id": 42900000, "points": None,
                    "_tags": ["comment", "author_user%d" % (i % 4)]})
    return hit


def gen_reddit(i, ts):
    rid = format(1000000 + i, "x")
    return {"kind": "t3", "data": {
        "id": rid, "name": "t3_" + rid, "subreddit": "rust", "subreddit_subscribers": 350000,
        "title": "Post %d: año ñandú café 🎉 #rustlang" % i, "selftext": "body **%d**" % i,
        "author": "redditor%d" % (i % 3), "created_utc": float(ts),
        "permalink": "/r/rust/comments/%s/post_%d/" % (rid, i), "url": "https://x.example/%d" % i,
        "score": i, "ups": i, "num_comments": i % 5, "over_18": False}}


def gen_bluesky(i, ts):
    rkey = "3lgh%07d" % i
    did = "did:plc:user%d" % (i % 3)
    text = item_text(i)
    tag_start = len(text.encode("utf-8")) - len("#rustlang")
    return {"uri": "at://%s/app.bsky.feed.post/%s" % (did, rkey), "cid": "bafy%d" % i,
            "author": {"did": did, "handle": "user%d.bsky.social" % (i % 3),
                       "displayName": "User %d" % (i % 3), "labels": []},
            "record": {"$type": "app.bsky.feed.post", "text": text, "createdAt": iso(ts),
                       "langs": ["es"],
                       "facets": [{"index": {"byteStart": tag_start,
                                             "byteEnd": tag_start + 9},
                                   "features": [{"$type": "app.bsky.richtext.facet#tag",
                                                 "tag": "rustlang"}]},
                                  {"index": {"byteStart": 0, "byteEnd": 4},
                                   "features": [{"$type": "app.bsky.richtext.facet#mention",
                                                 "did": "did:plc:bob"}]}]},
            "replyCount": i % 3, "repostCount": i % 4, "likeCount": i % 7, "quoteCount": 0,
            "indexedAt": iso(ts + 1), "labels": []}


def gen_x(i, ts):
    return {"id": str(1886400000000000000 + i), "text": item_text(i),
            "author_id": str(2000 + i % 3), "created_at": iso(ts), "lang": "es",
            "public_metrics": {"retweet_count": i % 4, "reply_count": i % 3,
                               "like_count": i % 7, "quote_count": 0},
            "entities": {"hashtags": [{"start": 0, "end": 9, "tag": "rustlang"}],
                         "mentions": [{"start": 0, "end": 4, "username": "bob", "id": "1"}]},
            "edit_history_tweet_ids": [str(1886400000000000000 + i)]}


def gen_youtube(i, ts):
    vid = "vid%08d" % i
    return {"kind": "youtube#searchResult", "etag": "e%d" % i,
            "id": {"kind": "youtube#video", "videoId": vid},
            "snippet": {"publishedAt": iso(ts, False), "channelId": "UCchan%d" % (i % 2),
                        "title": "Post %d: a&ntilde;o &quot;ñandú&quot; café 🎉 #rustlang" % i,
                        "description": "desc &amp; more", "channelTitle": "Canal %d" % (i % 2),
                        "liveBroadcastContent": "none", "publishTime": iso(ts, False)}}


def gen_youtube_comment(i, ts):
    cid = "Ugz%08d" % i
    return {"kind": "youtube#commentThread", "id": cid,
            "snippet": {"videoId": "vidX", "totalReplyCount": 0, "isPublic": True,
                        "topLevelComment": {"kind": "youtube#comment", "id": cid, "snippet": {
                            "videoId": "vidX",
                            "textDisplay": "Post %d: año ñandú café 🎉 #rustlang <a href=\"https:"
                                           "//www.youtube.com/watch?v=vidX&amp;t=1\">0:01</a>" % i,
                            "textOriginal": "Post %d" % i,
                            "authorDisplayName": "@viewer%d" % (i % 3),
                            "authorChannelId": {"value": "UCviewer%d" % (i % 3)},
                            "likeCount": i % 5, "publishedAt": iso(ts, False),
                            "updatedAt": iso(ts, False)}}}}


def gen_lemmy(i, ts):
    pid = 2456000 + i
    return {"post": {"id": pid, "name": "Post %d: año ñandú café 🎉 #rustlang" % i,
                     "url": "https://blog.example/%d" % i, "body": "Body **%d**" % i,
                     "published": iso(ts).replace(".000Z", ".123456Z"), "updated": None,
                     "ap_id": "https://lemmy.example/post/%d" % pid, "local": True,
                     "language_id": 37, "nsfw": False, "deleted": False, "removed": False,
                     "creator_id": 10 + i % 3, "community_id": 678},
            "creator": {"id": 10 + i % 3, "name": "lemming%d" % (i % 3),
                        "display_name": "Lemming %d" % (i % 3),
                        "actor_id": "https://lemmy.example/u/lemming%d" % (i % 3)},
            "community": {"id": 678, "name": "rust", "title": "Rust",
                          "actor_id": "https://lemmy.example/c/rust"},
            "counts": {"post_id": pid, "comments": i % 5, "score": i, "upvotes": i + 1,
                       "downvotes": 1}}


GEN = {"mastodon": gen_mastodon, "hn": gen_hn, "reddit": gen_reddit, "bluesky": gen_bluesky,
       "x": gen_x, "youtube": gen_youtube, "youtube_comments": gen_youtube_comment,
       "lemmy": gen_lemmy}


def generate(spec):
    kind = spec["kind"]
    first, last = spec.get("ids", [0, -1])
    t0 = spec.get("t0", T0)
    step = spec.get("step", STEP)
    order = list(range(last, first - 1, -1)) + list(spec.get("dup", []))
    items = [GEN[kind](i, t0 + i * step) for i in order]
    if kind == "mastodon":
        return items
    if kind == "hn":
        return {"hits": items, "nbHits": spec.get("nb_hits", len(items)),
                "page": spec.get("page", 0), "nbPages": spec.get("nb_pages", 1),
                "hitsPerPage": spec.get("hits_per_page", max(len(items), 1)),
                "processingTimeMS": 1}
    if kind == "reddit":
        return {"kind": "Listing", "data": {"after": spec.get("next"), "before": None,
                                            "dist": len(items), "children": items}}
    if kind == "bluesky":
        out = {"posts": items, "hitsTotal": len(items)}
        if spec.get("next"):
            out["cursor"] = spec["next"]
        return out
    if kind == "x":
        meta = {"result_count": len(items)}
        if items:
            meta["newest_id"] = items[0]["id"]
            meta["oldest_id"] = items[-1]["id"]
        if spec.get("next"):
            meta["next_token"] = spec["next"]
        out = {"meta": meta}
        if items:
            out["data"] = items
            out["includes"] = {"users": [
                {"id": str(2000 + k), "username": "tuitera%d" % k, "name": "Tuitera %d" % k,
                 "public_metrics": {"followers_count": 1500 + k}} for k in range(3)]}
        return out
    if kind in ("youtube", "youtube_comments"):
        out = {"kind": "youtube#searchListResponse", "items": items,
               "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)}}
        if spec.get("next"):
            out["nextPageToken"] = spec["next"]
        return out
    if kind == "lemmy":
        out = {"posts": items, "comments": [], "communities": [], "users": []}
        if spec.get("next"):
            out["next_page"] = spec["next"]
        return out
    raise ValueError("unknown gen kind " + kind)


def feed(spec):
    kind = spec.get("kind", "rss")
    first, last = spec.get("ids", [0, -1])
    t0 = spec.get("t0", T0)
    step = spec.get("step", STEP)
    idx = list(range(last, first - 1, -1))
    if kind == "rss":
        items = []
        for i in idx:
            ts = t0 + i * step
            guid = ("<guid isPermaLink=\"true\">https://blog.example/p/%d</guid>" % i
                    if i % 2 == 0 else "<guid isPermaLink=\"false\">item-%d</guid>" % i)
            items.append(
                "<item><title>Post %d: año ñandú café 🎉 #rustlang</title>"
                "<link>https://blog.example/p/%d</link>%s"
                "<pubDate>%s</pubDate><dc:creator>Autora %d</dc:creator>"
                "<category>rustlang</category><category>noticias</category>"
                "<description>&lt;p&gt;Resumen &lt;b&gt;%d&lt;/b&gt; &amp;amp; m&#225;s"
                "&lt;/p&gt;</description></item>"
                % (i, i, guid, email.utils.formatdate(ts, usegmt=True), i % 3, i))
        return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<rss version=\"2.0\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" "
                "xmlns:content=\"http://purl.org/rss/1.0/modules/content/\"><channel>"
                "<title>Blog</title><link>https://blog.example/</link><description>d"
                "</description><language>es-pe</language>%s</channel></rss>\n" % "".join(items))
    entries = []
    for i in idx:
        ts = t0 + i * step
        entries.append(
            "<entry><id>tag:blog.example,2026:post-%d</id>"
            "<title type=\"text\">Post %d: año ñandú café 🎉 #rustlang</title>"
            "<link rel=\"alternate\" href=\"https://blog.example/a/%d\"/>"
            "<link rel=\"edit\" href=\"https://blog.example/edit/%d\"/>"
            "<published>%s</published><updated>%s</updated>"
            "<author><name>Autor %d</name></author><category term=\"rustlang\"/>"
            "<content type=\"html\">&lt;p&gt;Cuerpo &lt;i&gt;%d&lt;/i&gt;&lt;br&gt;l&#237;nea"
            "&lt;/p&gt;</content></entry>"
            % (i, i, i, i, iso(ts, False), iso(ts + 3600, False), i % 3, i))
    return ("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
            "<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"es\">"
            "<id>tag:blog.example,2026:feed</id><title>Blog</title><updated>%s</updated>%s"
            "</feed>\n" % (iso(t0, False), "".join(entries)))


class Fixture:
    def __init__(self, scenario, log_path):
        self.routes = scenario.get("routes", [])
        self.uses = [0] * len(self.routes)
        self.default = scenario.get("default", {"status": 404, "json": {"error": "no route"}})
        self.log_path = log_path
        self.lock = threading.Lock()
        self.base = ""

    def match(self, method, path, query, headers):
        with self.lock:
            for n, r in enumerate(self.routes):
                if r.get("method", "GET") != method or r.get("path") != path:
                    continue
                if "times" in r and self.uses[n] >= r["times"]:
                    continue
                ok = True
                for k, v in r.get("query", {}).items():
                    got = query.get(k)
                    if v is None:
                        ok = got is None
                    elif v == "*":
                        ok = got is not None
                    else:
                        ok = got is not None and got[-1] == v
                    if not ok:
                        break
                for k, v in r.get("when_headers", {}).items():
                    if not ok:
                        break
                    got = headers.get(k)
                    ok = got is None if v is None else got == v
                if ok:
                    self.uses[n] += 1
                    return n, r
            return -1, self.default

    def record(self, entry):
        if not self.log_path:
            return
        with self.lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def body_of(self, r):
        ctype = r.get("content_type")
        if "json" in r:
            data = json.dumps(r["json"], ensure_ascii=False)
            ctype = ctype or "application/json; charset=utf-8"
        elif "gen" in r:
            data = json.dumps(generate(r["gen"]), ensure_ascii=False)
            ctype = ctype or "application/json; charset=utf-8"
        elif "feed" in r:
            data = feed(r["feed"])
            ctype = ctype or ("application/atom+xml" if r["feed"].get("kind") == "atom"
                              else "application/rss+xml; charset=utf-8")
        else:
            data = r.get("body", "")
            ctype = ctype or "text/plain; charset=utf-8"
        return data.replace("{base}", self.base).encode("utf-8"), ctype


def expand(value, base):
    """Header value placeholders: {base} and {now+N}."""
    value = value.replace("{base}", base)
    m = re.search(r"\{now\+(\d+)\}", value)
    if m:
        value = value.replace(m.group(0), str(int(time.time()) + int(m.group(1))))
    return value


def make_handler(fx):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            u = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
            n = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(n).decode("utf-8", "replace") if n > 0 else ""
            idx, r = fx.match(self.command, u.path, query, self.headers)
            fx.record({"t": time.time(), "method": self.command, "path": u.path,
                       "query": query, "headers": dict(self.headers), "body": body,
                       "route": idx})
            if r.get("delay_ms"):
                time.sleep(r["delay_ms"] / 1000.0)
            if "stream" in r:
                self.send_stream(r)
                return
            status = r.get("status", 200)
            data, ctype = (b"", None) if status == 304 else fx.body_of(r)
            self.send_response(status)
            if ctype is not None:
                self.send_header("Content-Type", ctype)
            for k, v in r.get("headers", {}).items():
                self.send_header(k, expand(str(v), fx.base))
            if status != 304:
                self.send_header("Content-Length", str(len(data)))
            cut = r.get("truncate")
            if cut is not None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if status != 304:
                self.wfile.write(data if cut is None else data[:cut])
            self.wfile.flush()

        def chunk(self, data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def send_stream(self, r):
            self.send_response(r.get("status", 200))
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.flush()
            try:
                for piece in r["stream"]:
                    if piece.get("delay_ms"):
                        time.sleep(piece["delay_ms"] / 1000.0)
                    if "raw" in piece:
                        parts = [piece["raw"].encode("utf-8")]
                    else:
                        status = json.dumps(gen_mastodon(piece["update"], T0 + piece["update"]
                                                         * STEP), ensure_ascii=False)
                        data = ("event: update\ndata: %s\n\n" % status).encode("utf-8")
                        k = piece.get("split")
                        parts = [data] if k is None else [data[:k], data[k:]]
                    for n, part in enumerate(parts):
                        if n > 0:
                            time.sleep(0.05)
                        self.chunk(part)
                if r.get("hold_ms"):
                    time.sleep(r["hold_ms"] / 1000.0)
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = handle_any
        do_POST = handle_any

        def log_message(self, *args):
            pass

    return Handler


class QuietServer(http.server.ThreadingHTTPServer):
    """A client that hangs up early (a collector killed by a test) is not an error."""

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        scenario = json.load(f)
    log_path = None
    if "--log" in argv:
        log_path = argv[argv.index("--log") + 1]
    fx = Fixture(scenario, log_path)
    server = QuietServer(("127.0.0.1", 0), make_handler(fx))
    server.daemon_threads = True
    port = server.server_address[1]
    fx.base = "http://127.0.0.1:%d" % port
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
