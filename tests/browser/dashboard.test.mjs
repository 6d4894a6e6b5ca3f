// Browser tests of the escucha dashboard: headless Debian chromium driven by playwright-core
// loads the dashboard from a running escucha-api (over a private redis-server holding data in
// the aggregator's shape) and checks that the numbers shown equal Redis, that post text with
// markup stays text, that another team's token sees nothing, that a topic edit is stored with
// its audit entry, and that the live panel shows a post published on the live channel.
//
// env: ESC_API_BIN (escucha-api), ESC_WEB_ROOT (built dashboard), ESC_VALIDATOR (query
// validator), ESC_BROWSER_MODULES (node_modules holding playwright-core), optional
// ESC_CHROMIUM (default /usr/bin/chromium) and ESC_SCREENSHOT_DIR (writes dashboard-*.png).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { removeDir, SECRET, seed, startApi, startRedis, sumHours, tempDir } from "./support.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(process.env.ESC_BROWSER_MODULES || path.join(here, "node_modules"), "noop.js"));
const { chromium } = require("playwright-core");

const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let dir;
let redis;
let api;
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
    api = await startApi(process.env.ESC_API_BIN, dir, redis.sock, process.env.ESC_WEB_ROOT, process.env.ESC_VALIDATOR);
    base = "http://127.0.0.1:" + api.port + "/";
    browser = await chromium.launch({ executablePath: process.env.ESC_CHROMIUM || "/usr/bin/chromium",
        headless: true, args: CHROMIUM_ARGS });
});

after(async () => {
    assert.deepEqual(pageErrors, [], "errors in the page");
    if (browser) {
        await browser.close();
    }
    if (api) {
        api.proc.kill("SIGTERM");
        await new Promise((r) => api.proc.once("exit", r));
        for (const s of Object.values(SECRET)) {
            assert.ok(!api.log().includes(s), "a token is in the API log");
        }
    }
    if (redis) {
        redis.client.close();
        redis.proc.kill("SIGTERM");
    }
    if (dir) {
        removeDir(dir);
    }
});

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

test("topic page shows the numbers in Redis and post markup as text; live panel shows a published post", async () => {
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

    // live: wait for the stream, publish on the team's channel, see it arrive as text
    await page.waitForSelector("[data-testid=live-state][data-state=open]");
    const live = [
        { id: "live1", platform: "bluesky", author: "@veedores.bsky.social", created_at: Date.now(), lang: "es",
            text: "<img src=x onerror=\"window.__xss2=1\"> En vivo: el pleno del Congreso vota la vacancia ahora mismo",
            topics: ["congreso"], url: "https://example.org/live1", sentiment: -0.2 },
        { id: "live2", platform: "mastodon", author: "@rosa.quispe@mastodon.pe", created_at: Date.now(), lang: "es",
            text: "Otra publicación que solo es de elecciones", topics: ["elecciones"] },
    ];
    assert.equal(await redis.client.cmd("PUBLISH", "esc:live:{gob}", JSON.stringify(live)), 1);
    await page.waitForSelector("[data-testid=live-post]");
    const got = await page.$$eval("[data-testid=live-post] [data-testid=post-text]", (els) => els.map((e) => e.textContent));
    assert.deepEqual(got, [live[0].text]); // the topic filter kept the elecciones post out
    assert.equal(await page.$$eval("[data-testid=live-list] img", (els) => els.length), 0);
    assert.equal(await page.evaluate(() => window.__xss2), undefined);
    if (process.env.ESC_SCREENSHOT_DIR) {
        await redis.client.cmd("PUBLISH", "esc:live:{gob}", JSON.stringify([{ id: "live3", platform: "mastodon",
            author: "@lucia_ramos@masto.lima", created_at: Date.now(), lang: "es", topics: ["congreso"],
            text: "Congresistas piden reconsiderar la votación; la sesión sigue abierta. #CongresoPerú" }]));
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
