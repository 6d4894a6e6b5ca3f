// Browser tests of the escucha dashboard: headless Debian chromium driven by playwright-core
// loads the dashboard from a running escucha-api (over a private redis-server holding data in
// the aggregator's shape) and checks that the numbers shown equal Redis, that post text with
// markup stays text, that another team's token sees nothing, and that a topic edit is stored
// with its audit entry. Beside it runs the real pipeline (collector -> broker -> classifier ->
// aggregator): posts pushed into the collector's ingest source reach the live panel, and a
// topic edited in the dashboard is picked up by the running classifier.
//
// env: ESC_API_BIN (escucha-api), ESC_WEB_ROOT (built dashboard), ESC_VALIDATOR (query
// validator), ESC_BROWSER_MODULES (node_modules holding playwright-core), optional
// ESC_COLLECTOR_BIN, ESC_BROKER_BIN, ESC_CLASSIFIER_BIN, ESC_AGGREGATOR_BIN (default: beside
// escucha-api in the build tree), ESC_CHROMIUM (default /usr/bin/chromium) and
// ESC_SCREENSHOT_DIR (writes dashboard-*.png).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { Pipeline, INGEST_TOKEN, removeDir, SECRET, seed, startApi, startRedis, stopProc, sumHours, tempDir,
    waitFor, writeConfig } from "./support.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(path.resolve(process.env.ESC_BROWSER_MODULES || path.join(here, "node_modules")), "noop.js"));
const { chromium } = require("playwright-core");

const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let dir;
let redis;
let api;
let pipeline;
let browser;
let base;
let end;

const pageErrors = [];
const fmt = (n) => new Intl.NumberFormat("es-PE").format(n);

before(async () => {
    for (const v of ["ESC_API_BIN", "ESC_WEB_ROOT", "ESC_VALIDATOR"]) {
        assert.ok(process.env[v], v + " must be set");
    }
    dir = tempDir();
    redis = await startRedis(dir);
    end = Math.floor(Date.now() / 1000 / 86400) * 86400 - 86400; // yesterday 00:00 UTC
    await seed(redis.client, end);
    const cfg = writeConfig(dir, redis.sock, process.env.ESC_WEB_ROOT, process.env.ESC_VALIDATOR);
    const up = await Promise.allSettled([
        startApi(process.env.ESC_API_BIN, dir, cfg),
        Pipeline.start(dir, cfg),
        chromium.launch({ executablePath: process.env.ESC_CHROMIUM || "/usr/bin/chromium", headless: true,
            args: CHROMIUM_ARGS }),
    ]);
    [api, pipeline, browser] = up.map((x) => x.value); // what started is stopped by after()
    for (const x of up) {
        if (x.status === "rejected") {
            throw x.reason;
        }
    }
    base = "http://127.0.0.1:" + api.port + "/";
});

// Stops everything (also after a failure), then checks that every process exited 0 (leaks and
// undefined behaviour fail a sanitizer build), that each pipeline service passed on every post
// fed, and that no token reached a log.
after(async () => {
    const problems = [];
    if (browser) {
        await browser.close().catch((e) => problems.push("closing chromium: " + e));
    }
    if (pipeline) {
        const st = await pipeline.stop();
        for (const [s, r] of Object.entries(st)) {
            if (r.code !== 0) {
                problems.push("escucha-" + s + " exited " + JSON.stringify(r) + ":\n" + pipeline.log(s));
            }
        }
        const n = pipeline.fed;
        const want = { collector: "stopped sent=" + n + " ", broker: "stopped forwarded=" + n,
            classifier: "stopped in=" + n + " out=" + n + " invalid=0 dropped=0 ", aggregator: "stopped in=" + n + " " };
        for (const [s, line] of Object.entries(want)) {
            if (!pipeline.log(s).includes(line)) {
                problems.push("escucha-" + s + " did not log '" + line + "':\n" + pipeline.log(s));
            }
        }
        if (pipeline.log("collector").includes(INGEST_TOKEN)) {
            problems.push("the ingest token is in the collector's log");
        }
    }
    if (api) {
        const st = await stopProc(api.proc);
        if (st.code !== 0) {
            problems.push("escucha-api exited " + JSON.stringify(st) + ":\n" + api.log());
        }
        for (const s of Object.values(SECRET)) {
            if (api.log().includes(s)) {
                problems.push("a token is in the API log");
            }
        }
    }
    if (redis) {
        redis.client.close();
        await stopProc(redis.proc);
    }
    if (dir && !problems.length) {
        removeDir(dir);
    }
    assert.deepEqual(problems, [], "logs kept in " + dir);
    assert.deepEqual(pageErrors, [], "errors in the page");
});

// A post in the collector's post JSON shape (docs/collector.md), dated now.
function post(id, text, handle, name) {
    return { id, platform: "bluesky", author: { handle, name, followers: 1200 }, text, lang: "es",
        url: "https://example.org/" + id, created_at: Date.now(), likes: 2, reposts: 1, replies: 0 };
}

// Waits until the aggregator has counted every post fed so far (esc:agg:processed counts each
// post once, matched or not, and only the pipeline writes it).
async function drained(what) {
    await waitFor(async () => Number(await redis.client.cmd("GET", "esc:agg:processed") || 0) >= pipeline.fed,
        15000, "the aggregator to count " + what);
    assert.equal(Number(await redis.client.cmd("GET", "esc:agg:processed")), pipeline.fed);
}

// A fresh browser context signed in with token; returns the page.
async function signIn(token, width = 1440) {
    const ctx = await browser.newContext({ viewport: { width, height: 1000 }, locale: "es-PE" });
    const page = await ctx.newPage();
    page.on("pageerror", (e) => pageErrors.push(String(e)));
    await page.goto(base);
    await page.fill("#token", SECRET[token]);
    await page.click("form.login button[type=submit]");
    await page.waitForSelector("header.top");
    return page;
}

test("overview shows every topic with the posts and change in Redis", async () => {
    const page = await signIn("gob-viewer");
    await page.waitForSelector("[data-testid=topic-card]");
    const cards = await page.$$eval("[data-testid=topic-card]", (els) => els.map((e) => ({
        topic: e.dataset.topic,
        posts: e.querySelector("[data-testid=posts]").dataset.value,
        text: e.querySelector("[data-testid=posts]").textContent,
        change: e.querySelector("[data-testid=change]").dataset.value,
    })));
    assert.deepEqual(cards.map((c) => c.topic), ["congreso", "elecciones", "corrupcion"]);
    for (const c of cards) {
        const now = await sumHours(redis.client, "gob/" + c.topic, "posts", end - 7 * 86400, end);
        const prev = await sumHours(redis.client, "gob/" + c.topic, "posts", end - 14 * 86400, end - 7 * 86400);
        assert.ok(now > 0);
        assert.equal(Number(c.posts), now, c.topic);
        assert.equal(c.text, fmt(now));
        assert.equal(Number(c.change), Math.round((now - prev) * 1000 / prev) / 10, c.topic);
    }
    // Spanish by default for a Spanish team, English on the toggle
    assert.equal(await page.textContent("[data-testid=nav-overview]"), "Resumen");
    await page.click("button[data-lang=en]");
    await page.waitForSelector("text=Overview");
    await page.click("button[data-lang=es]");
    if (process.env.ESC_SCREENSHOT_DIR) {
        await page.waitForTimeout(300);
        await page.screenshot({ path: path.join(process.env.ESC_SCREENSHOT_DIR, "dashboard-overview.png") });
        await page.goto(base + "#/t/gob/compare");
        await page.waitForSelector("[data-testid=share-table] tbody tr");
        await page.waitForTimeout(300);
        await page.screenshot({ path: path.join(process.env.ESC_SCREENSHOT_DIR, "dashboard-compare.png"), fullPage: true });
    }
    await page.context().close();
});

test("topic page shows the numbers in Redis and post markup as text; live panel shows a post fed through the pipeline", async () => {
    const page = await signIn("gob-viewer");
    await page.goto(base + "#/t/gob/topic/congreso");
    await page.waitForSelector("[data-testid=kpi-posts][data-value]:not([data-value=''])");
    const from = end - 7 * 86400;
    for (const f of ["posts", "reach", "engagement"]) {
        const want = await sumHours(redis.client, "gob/congreso", f, from, end);
        const got = await page.$eval("[data-testid=kpi-" + f + "]", (e) => ({ v: e.dataset.value, t: e.querySelector(".kpi-value").textContent }));
        assert.equal(Number(got.v), want, f);
        assert.equal(got.t, fmt(want), f);
    }
    // languages: each bar equals the sum of lang:<code> over the week
    const bars = await page.$$eval("[data-testid=languages] li", (els) => els.map((e) => [e.dataset.key, Number(e.dataset.value)]));
    assert.ok(bars.length >= 3);
    for (const [lang, v] of bars) {
        assert.equal(v, await sumHours(redis.client, "gob/congreso", "lang:" + lang, from, end), lang);
    }
    const sent = await page.$$eval("[data-testid=sentiment] li", (els) => els.map((e) => Number(e.dataset.value)));
    assert.equal(sent[0], await sumHours(redis.client, "gob/congreso", "sentiment_pos", from, end));
    assert.equal(sent[2], await sumHours(redis.client, "gob/congreso", "sentiment_neg", from, end));
    // the spike is marked and listed
    await page.waitForSelector("[data-testid=volume-chart] canvas");
    assert.match(await page.textContent(".card-head .muted.small"), /1 pico$/);
    // top authors in Redis order (the sum of the day scores)
    const authors = await page.$$eval("[data-testid=top-authors] td.author", (els) => els.map((e) => e.textContent));
    assert.equal(authors.length, 10);
    // a post whose text holds a <script> shows it as text and nothing runs
    const texts = await page.$$eval("[data-testid=top-posts] [data-testid=post-text]", (els) => els.map((e) => e.textContent));
    assert.ok(texts.includes("<script>window.__xss = 1</script> Votación en el pleno: 78 a favor, 24 en contra. Seguimos informando."));
    assert.equal(await page.$$eval("[data-testid=top-posts] script", (els) => els.length), 0);
    assert.equal(await page.evaluate(() => window.__xss), undefined);

    // live: with the stream open, push two posts into the collector; they go through the broker,
    // the classifier and the aggregator (which publishes them on the team's channel) to
    // escucha-api and the page. The congreso one shows, its markup as text; the elecciones one,
    // sent first, is kept out by the topic filter.
    await page.waitForSelector("[data-testid=live-state][data-state=open]");
    const stamp = Date.now();
    const live = [
        post("live-elecciones-" + stamp, "Otra publicación que solo es de elecciones", "@rosa.quispe@mastodon.pe", "Rosa Quispe"),
        post("live-congreso-" + stamp, "<script>window.__xss2 = 1</script><img src=x onerror=\"window.__xss3=1\"> "
            + "En vivo: el pleno del Congreso vota la vacancia ahora mismo", "@veedores.bsky.social", "Veedores"),
    ];
    await pipeline.feed(live);
    await page.waitForSelector("[data-testid=live-post]", { timeout: 15000 });
    const got = await page.$$eval("[data-testid=live-post]", (els) => els.map((e) => ({
        text: e.querySelector("[data-testid=post-text]").textContent, author: e.querySelector(".author").textContent })));
    assert.deepEqual(got, [{ text: live[1].text, author: "@veedores.bsky.social" }]);
    assert.equal(await page.$$eval("[data-testid=live-list] script, [data-testid=live-list] img", (els) => els.length), 0);
    assert.equal(await page.evaluate(() => window.__xss2), undefined);
    assert.equal(await page.evaluate(() => window.__xss3), undefined);
    // both were classified and counted: each topic's latest list holds its post
    const latest = async (key) => (await redis.client.cmd("LRANGE", "esc:latest:{" + key + "}", 0, -1))
        .map((x) => JSON.parse(x).id);
    await drained("the live posts");
    await waitFor(async () => (await latest("gob/elecciones")).length && (await latest("gob/congreso")).length, 5000,
        "the live posts in their topics' latest lists");
    assert.deepEqual(await latest("gob/elecciones"), [live[0].id]);
    assert.deepEqual(await latest("gob/congreso"), [live[1].id]);
    if (process.env.ESC_SCREENSHOT_DIR) {
        await pipeline.feed([post("live3-" + stamp, "Congresistas piden reconsiderar la votación; la sesión sigue abierta. #CongresoPerú",
            "@lucia_ramos@masto.lima", "Lucía Ramos")]);
        await page.waitForFunction(() => document.querySelectorAll("[data-testid=live-post]").length === 2);
        await page.waitForTimeout(1700);
        await page.screenshot({ path: path.join(process.env.ESC_SCREENSHOT_DIR, "dashboard-topic.png"), fullPage: true });
    }
    await page.context().close();
});

test("team B's token sees nothing of team A", async () => {
    const page = await signIn("dev-viewer");
    await page.waitForSelector("[data-testid=topic-card]");
    assert.deepEqual(await page.$$eval("[data-testid=topic-card]", (els) => els.map((e) => e.dataset.topic)), ["anemia"]);
    assert.equal(await page.$$("select.team-select").then((x) => x.length), 0);
    const gobWords = ["Gobernanza", "Congreso", "congreso", "Elecciones", "Corrupción", "@rosa.quispe"];
    let body = await page.textContent("body");
    for (const w of gobWords) {
        assert.ok(!body.includes(w), "dev sees " + w);
    }
    // going to team gob's pages directly shows an error and no data
    for (const route of ["#/t/gob", "#/t/gob/topic/congreso", "#/t/gob/compare", "#/t/gob/topics"]) {
        await page.goto(base + route);
        await page.waitForSelector(".error");
        body = await page.textContent("body");
        for (const w of gobWords) {
            assert.ok(!body.includes(w), route + " shows " + w);
        }
    }
    const status = await page.evaluate(async (tok) => {
        const out = [];
        for (const p of ["/api/v1/teams/gob", "/api/v1/teams/gob/topics/congreso/summary", "/api/v1/teams/gob/live"]) {
            out.push((await fetch(p, { headers: { Authorization: "Bearer " + tok } })).status);
        }
        return out;
    }, SECRET["dev-viewer"]);
    assert.deepEqual(status, [404, 404, 404]);
    await page.context().close();
});

test("a topic edit with live query validation is stored with its audit entry", async () => {
    const v0 = Number(await redis.client.cmd("GET", "esc:topics:version") || 0);
    const page = await signIn("gob-editor");
    await page.goto(base + "#/t/gob/topics/new");
    await page.waitForSelector("[data-testid=topic-form]");
    await page.fill("input[data-field=id]", "salud");
    await page.fill("input[data-field=name]", "Salud pública");
    await page.fill("textarea[data-field=keywords]", "minsa\nhospital");
    await page.fill("textarea[data-field=query]", "(salud OR minsa AND hospital");
    await page.waitForSelector("[data-testid=validation-query][data-state=error]");
    // the position comes from the validator (the classifier's --check-query, or its stand-in)
    const err = await page.textContent("[data-testid=validation-query]");
    assert.match(err, /columna \d+: \S/);
    assert.ok(await page.$$eval("[data-testid=validation-query] mark", (els) => els.length) >= 1);
    await page.fill("textarea[data-field=query]", "(salud OR minsa) AND hospital");
    await page.waitForSelector("[data-testid=validation-query][data-state=ok]");
    if (process.env.ESC_SCREENSHOT_DIR) {
        await page.fill("textarea[data-field=exclude]", "sorteo OR");
        await page.waitForSelector("[data-testid=validation-exclude][data-state=error]");
        await page.screenshot({ path: path.join(process.env.ESC_SCREENSHOT_DIR, "dashboard-editor.png"), fullPage: true });
        await page.fill("textarea[data-field=exclude]", "");
    }
    await page.click("[data-testid=save]");
    await page.waitForSelector("[data-testid=save-result][data-state=ok]");
    const stored = JSON.parse(await redis.client.cmd("HGET", "esc:topics:{gob}", "salud"));
    assert.equal(stored.name, "Salud pública");
    assert.equal(stored.query, "(salud OR minsa) AND hospital");
    assert.deepEqual(stored.keywords, ["minsa", "hospital"]);
    const audit = JSON.parse(await redis.client.cmd("LINDEX", "esc:audit:{gob}", 0));
    assert.equal(audit.who, "eva");
    assert.equal(audit.action, "create");
    assert.equal(audit.after.query, "(salud OR minsa) AND hospital");
    assert.equal(Number(await redis.client.cmd("GET", "esc:topics:version")), v0 + 1);
    // the list shows it as edited in the dashboard, and the audit panel names the editor
    await page.goto(base + "#/t/gob/topics");
    await page.waitForSelector("[data-testid=audit]");
    assert.match(await page.textContent("[data-testid=topic-list] tr[data-topic=salud]"), /editado en el panel/);
    assert.match(await page.textContent("[data-testid=audit]"), /eva creó salud/);
    // a viewer cannot edit
    const viewer = await signIn("gob-viewer");
    await viewer.goto(base + "#/t/gob/topics");
    await viewer.waitForSelector(".notice");
    assert.equal(await viewer.$$("[data-testid=new-topic]").then((x) => x.length), 0);
    await viewer.context().close();
    await page.context().close();
});

test("a topic edit in the dashboard is picked up by the running classifier", async () => {
    const r = redis.client;
    const WORD = "zorbalinda"; // in no topic of the config file
    const total = async () => Number(await r.cmd("HGET", "esc:t:{gob/corrupcion}", "posts") || 0);
    const latest = async () => (await r.cmd("LRANGE", "esc:latest:{gob/corrupcion}", 0, -1)).map((x) => JSON.parse(x).id);
    const stamp = Date.now();
    const early = post("edit-before-" + stamp, "Vecinos denuncian otro caso de " + WORD + " en la municipalidad",
        "@observatorio.pe", "Observatorio");
    const late = post("edit-after-" + stamp, "Nuevo caso de " + WORD + " en la municipalidad: piden explicaciones",
        "@periodista_sur@mastodon.pe", "Periodista Sur");
    const total0 = await total();

    // 1. before the edit the word is in no topic: the post goes through and counts for none
    await pipeline.feed([early]);
    await drained("the post sent before the edit");
    assert.equal(await total(), total0);
    assert.deepEqual(await latest(), []);

    // 2. an editor adds the word to corrupcion's query in the topic editor
    const page = await signIn("gob-editor");
    await page.goto(base + "#/t/gob/topics/corrupcion");
    await page.waitForSelector("[data-testid=topic-form]");
    await page.fill("textarea[data-field=query]", WORD + " OR peculado");
    await page.waitForSelector("[data-testid=validation-query][data-state=ok]");
    await page.click("[data-testid=save]");
    await page.waitForSelector("[data-testid=save-result][data-state=ok]");
    const stored = JSON.parse(await r.cmd("HGET", "esc:topics:{gob}", "corrupcion"));
    assert.equal(stored.query, WORD + " OR peculado");
    assert.deepEqual(stored.keywords, ["corrupción", "soborno"]);
    await page.context().close();

    // 3. the running classifier reads the new version from Redis and swaps its matcher
    const version = await r.cmd("GET", "esc:topics:version");
    await waitFor(() => pipeline.reloaded(version), 10000, "the classifier to reload topics version " + version)
        .catch((e) => {
            throw new Error(e.message + "; its log:\n" + pipeline.log("classifier"));
        });

    // 4. the same word now counts for corrupcion: exactly the post sent after the edit
    await pipeline.feed([late]);
    await drained("the post sent after the edit");
    assert.equal(await total(), total0 + 1);
    const hour = Math.floor(late.created_at / 3600000) * 3600;
    assert.equal(await r.cmd("HGET", "esc:c:{gob/corrupcion}:h:" + hour, "posts"), "1");
    await waitFor(async () => (await latest()).length, 5000, "the post in corrupcion's latest list");
    assert.deepEqual(await latest(), [late.id]);

    // 5. the dashboard shows it: one post in the last 6 hours, and the live panel (replaying what
    // the API received) holds the post sent after the edit and not the one sent before
    const viewer = await signIn("gob-viewer");
    await viewer.goto(base + "#/t/gob/topic/corrupcion");
    await viewer.waitForSelector("[data-testid=kpi-posts][data-value]:not([data-value=''])");
    await viewer.click("button[data-range='6h']");
    await viewer.waitForSelector("button[data-range='6h'].on");
    await viewer.waitForSelector("[data-testid=kpi-posts][data-value]:not([data-value=''])");
    const kpi = await viewer.$eval("[data-testid=kpi-posts]", (e) => ({ v: e.dataset.value, t: e.querySelector(".kpi-value").textContent }));
    assert.deepEqual(kpi, { v: "1", t: "1" });
    await viewer.waitForSelector("[data-testid=live-post]", { timeout: 15000 });
    const texts = await viewer.$$eval("[data-testid=live-post] [data-testid=post-text]", (els) => els.map((e) => e.textContent));
    assert.deepEqual(texts, [late.text]);
    await viewer.context().close();
});
