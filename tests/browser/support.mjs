// Support for the dashboard's browser tests: a private redis-server, a tiny RESP client, one
// deployment file, escucha-api on a free port, the real pipeline (collector with an ingest
// source -> broker -> classifier -> aggregator, on ipc sockets), and deterministic data in the
// aggregator's Redis shape (docs/redis-schema.md) for a team "gob" (three topics) and a team
// "dev" (one topic). Every process started here is killed when the test process exits.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, mkdtempSync, rmSync, writeFileSync, readFileSync, openSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const TOKENS = {
    "gob-viewer": { name: "ana", team: "gob", role: "viewer" },
    "gob-editor": { name: "eva", team: "gob", role: "editor" },
    "dev-viewer": { name: "dan", team: "dev", role: "viewer" },
};
export const SECRET = Object.fromEntries(Object.keys(TOKENS).map((k) => [k, "browser-" + k + "-7f3a9c1e5b"]));

export const INGEST_TOKEN = "browser-ingest-2d8e4b7a19";

const sha = (s) => createHash("sha256").update(s).digest("hex");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The safety net: whatever happens to the tests, no process outlives the test process.
const children = new Set();
process.on("exit", () => {
    for (const p of children) {
        if (p.exitCode == null && p.signalCode == null) {
            p.kill("SIGKILL");
        }
    }
});

// Starts bin with stderr (and stdout) in logPath.
function launch(bin, args, logPath, env) {
    const fd = openSync(logPath, "w");
    const proc = spawn(bin, args, { stdio: ["ignore", fd, fd], env: env || process.env });
    closeSync(fd);
    children.add(proc);
    proc.once("exit", () => children.delete(proc));
    return proc;
}

// SIGTERM, then SIGKILL after timeoutMs; resolves to { code, signal } (signal "SIGKILL" when it
// had to be killed).
export async function stopProc(proc, timeoutMs = 15000) {
    if (proc.exitCode == null && proc.signalCode == null) {
        const done = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
        await done;
        clearTimeout(timer);
    }
    return { code: proc.exitCode, signal: proc.signalCode };
}

// Polls fn (sync or async) every 50 ms until it returns a truthy value, which it returns.
export async function waitFor(fn, timeoutMs, what) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = await fn();
        if (v) {
            return v;
        }
        if (Date.now() > deadline) {
            throw new Error("timed out after " + timeoutMs + " ms waiting for " + what);
        }
        await sleep(50);
    }
}

// Waits until the log of proc matches re; fails at once when proc exits first.
async function waitForLog(proc, logPath, re, timeoutMs, what) {
    return waitFor(() => {
        const m = readFileSync(logPath, "utf8").match(re);
        if (!m && proc.exitCode != null) {
            throw new Error(what + " exited status=" + proc.exitCode + ": " + readFileSync(logPath, "utf8"));
        }
        return m;
    }, timeoutMs, what);
}

export class Resp {
    constructor(sock) {
        this.sock = sock;
    }

    async connect() {
        this.c = net.createConnection(this.sock);
        this.buf = Buffer.alloc(0);
        this.waiters = [];
        this.c.on("data", (d) => {
            this.buf = Buffer.concat([this.buf, d]);
            this.pump();
        });
        await new Promise((res, rej) => {
            this.c.once("connect", res);
            this.c.once("error", rej);
        });
        return this;
    }

    // Parses one reply at offset i of buf; returns [value, next] or null when incomplete.
    parse(i) {
        const nl = this.buf.indexOf("\r\n", i);
        if (nl < 0) {
            return null;
        }
        const kind = String.fromCharCode(this.buf[i]);
        const line = this.buf.toString("utf8", i + 1, nl);
        if (kind === "+" || kind === "-") {
            return [kind === "-" ? new Error(line) : line, nl + 2];
        }
        if (kind === ":") {
            return [Number(line), nl + 2];
        }
        if (kind === "$") {
            const n = Number(line);
            if (n < 0) {
                return [null, nl + 2];
            }
            if (this.buf.length < nl + 2 + n + 2) {
                return null;
            }
            return [this.buf.toString("utf8", nl + 2, nl + 2 + n), nl + 2 + n + 2];
        }
        if (kind === "*") {
            const n = Number(line);
            const out = [];
            let j = nl + 2;
            for (let k = 0; k < n; k++) {
                const r = this.parse(j);
                if (!r) {
                    return null;
                }
                out.push(r[0]);
                j = r[1];
            }
            return [n < 0 ? null : out, j];
        }
        throw new Error("bad RESP");
    }

    pump() {
        while (this.waiters.length) {
            const r = this.parse(0);
            if (!r) {
                return;
            }
            this.buf = this.buf.subarray(r[1]);
            const w = this.waiters.shift();
            if (r[0] instanceof Error) {
                w.rej(r[0]);
            } else {
                w.res(r[0]);
            }
        }
    }

    cmd(...args) {
        const parts = ["*" + args.length + "\r\n"];
        for (const a of args) {
            const b = Buffer.from(String(a));
            parts.push("$" + b.length + "\r\n", b, "\r\n");
        }
        this.c.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
        return new Promise((res, rej) => this.waiters.push({ res, rej }));
    }

    close() {
        this.c.end();
    }
}

export async function startRedis(dir) {
    const sock = path.join(dir, "r.sock");
    const proc = launch("redis-server", ["--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no",
        "--dir", dir, "--daemonize", "no", "--loglevel", "warning"], path.join(dir, "redis.log"));
    for (let i = 0; i < 100; i++) {
        try {
            const r = await new Resp(sock).connect();
            if ((await r.cmd("PING")) === "PONG") {
                return { proc, sock, client: r };
            }
        } catch {
            await sleep(50);
        }
    }
    proc.kill();
    throw new Error("redis-server did not start");
}

// Writes the one deployment file every process reads (docs/configuration.md) and returns its
// path: the bus on ipc sockets in dir, the collector's ingest source on a free port, short
// aggregator flushes and topic polls so edits and posts show within a fraction of a second.
export function writeConfig(dir, redisSock, webRoot, validator) {
    const bus = (name) => "ipc://" + path.join(dir, name + ".sock");
    const cfg = {
        deployment: "browser-test",
        redis: { unix_socket: redisSock, prefix: "esc" },
        bus: { collect: bus("collect"), classify: bus("classify"), aggregate: bus("aggregate"),
            notify: bus("notify") },
        sources: [{ name: "feed", type: "ingest", listen: "127.0.0.1:0", token_env: "ESC_BROWSER_INGEST_TOKEN" }],
        teams: [
            { id: "gob", name: "Gobernanza Democrática", language: "es", timezone: "America/Lima",
                topics: [
                    { id: "congreso", name: "Congreso", keywords: ["congreso", "congresista", "#CongresoPerú"] },
                    { id: "elecciones", name: "Elecciones 2026", keywords: ["elecciones", "voto", "jne", "onpe"] },
                    { id: "corrupcion", name: "Corrupción", keywords: ["corrupción", "soborno"] },
                ] },
            { id: "dev", name: "Inclusive Development", language: "en", timezone: "America/Lima",
                topics: [{ id: "anemia", name: "Anemia infantil", keywords: ["anemia"] }] },
        ],
        classifier: { topics_poll_ms: 100 },
        aggregator: { flush_ms: 100 },
        api: { listen: "127.0.0.1:0", web_root: webRoot, validator, rate_burst: 100000, rate_per_s: 10000,
            sse_keepalive_ms: 1000,
            tokens: Object.entries(TOKENS).map(([k, v]) => Object.assign({ sha256: sha(SECRET[k]) }, v)) },
    };
    const cfgPath = path.join(dir, "escucha.json");
    writeFileSync(cfgPath, JSON.stringify(cfg, null, 1));
    return cfgPath;
}

export async function startApi(bin, dir, cfgPath) {
    const logPath = path.join(dir, "api.log");
    const proc = launch(bin, ["--config", cfgPath], logPath);
    const m = await waitFor(() => {
        const log = readFileSync(logPath, "utf8");
        const port = log.match(/listening url=http:\/\/[0-9.]+:(\d+)\//);
        if (proc.exitCode != null) {
            throw new Error("escucha-api exited: " + log);
        }
        return port && /live subscriber up/.test(log) ? port : null;
    }, 10000, "escucha-api to listen");
    return { proc, port: Number(m[1]), log: () => readFileSync(logPath, "utf8") };
}

// Where a pipeline binary is: ESC_<SERVICE>_BIN, else beside escucha-api in the build tree
// (<build>/<service>/escucha-<service>).
function serviceBin(service) {
    const v = process.env["ESC_" + service.toUpperCase() + "_BIN"];
    if (v) {
        return v;
    }
    return path.join(path.dirname(process.env.ESC_API_BIN), "..", service, "escucha-" + service);
}

const PIPELINE = ["collector", "broker", "classifier", "aggregator"]; // upstream first

// The real pipeline, each service a process reading cfgPath, with its log in dir/<service>.log.
// Posts enter through the collector's ingest source (POST /ingest with the bearer token).
export class Pipeline {
    static async start(dir, cfgPath) {
        const self = new Pipeline();
        self.dir = dir;
        self.fed = 0;
        self.procs = {};
        for (const s of PIPELINE.slice().reverse()) {
            const env = s === "collector" ? Object.assign({}, process.env, { ESC_BROWSER_INGEST_TOKEN: INGEST_TOKEN })
                : process.env;
            self.procs[s] = launch(serviceBin(s), ["--config", cfgPath], self.logPath(s), env);
        }
        try {
            await Promise.all(PIPELINE.map((s) => waitForLog(self.procs[s], self.logPath(s), /started /, 20000,
                "escucha-" + s)));
            const m = await waitForLog(self.procs.collector, self.logPath("collector"),
                /ingest listening source=feed \S+ port=(\d+)/, 5000, "the ingest source");
            self.ingestUrl = "http://127.0.0.1:" + m[1] + "/ingest";
        } catch (e) {
            await self.stop();
            throw e;
        }
        return self;
    }

    logPath(service) {
        return path.join(this.dir, service + ".log");
    }

    log(service) {
        return readFileSync(this.logPath(service), "utf8");
    }

    // Pushes posts (post JSON shape, docs/collector.md) into the collector; all must be accepted.
    async feed(posts) {
        const res = await fetch(this.ingestUrl, { method: "POST", body: JSON.stringify(posts),
            headers: { Authorization: "Bearer " + INGEST_TOKEN, "Content-Type": "application/json" } });
        const body = await res.json();
        if (res.status !== 202 || body.accepted !== posts.length) {
            throw new Error("ingest answered " + res.status + " " + JSON.stringify(body));
        }
        this.fed += posts.length;
    }

    // True once the classifier has swapped in the topics of stored version `version`.
    reloaded(version) {
        const log = this.log("classifier");
        const i = log.indexOf("topic overrides changed version=" + version + ", reloading");
        return i >= 0 && /reloaded [^\n]*trigger=api/.test(log.slice(i));
    }

    // Stops the services upstream first; returns { service: { code, signal } }.
    async stop() {
        const out = {};
        for (const s of PIPELINE) {
            out[s] = await stopProc(this.procs[s]);
        }
        return out;
    }
}

export function tempDir() {
    return mkdtempSync(path.join(os.tmpdir(), "esc-browser-"));
}

export function removeDir(d) {
    rmSync(d, { recursive: true, force: true });
}

// A deterministic pseudo-random generator (mulberry32).
function rng(seed) {
    let a = seed;
    return () => {
        a = (a + 0x6d2b79f5) | 0;
        let t = Math.imul(a ^ (a >>> 15), 1 | a);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

const LANGS = [["es", 0.78], ["en", 0.14], ["qu", 0.05], ["pt", 0.03]];
const PLATFORMS = [["mastodon", 0.46], ["bluesky", 0.38], ["rss", 0.16]];
const AUTHORS = ["@rosa.quispe@mastodon.pe", "@jnoticias.bsky.social", "@lucia_ramos@masto.lima",
    "@observatorio.pe", "@carlos.huaman@social.pe", "@radio_andina@mastodon.pe", "@veedores.bsky.social",
    "@mariela.c@masto.lima", "@datos_abiertos@social.pe", "@periodista_sur@mastodon.pe"];
const TAGS = ["congresoperu", "vacancia", "elecciones2026", "jne", "onpe", "transparencia", "lima", "corrupcion",
    "reformapolitica", "votoinformado"];
const TERMS = ["vacancia", "pleno", "votación", "moción", "congresistas", "constitución", "bancada", "reforma",
    "fiscalía", "presupuesto", "debate", "mesa directiva"];

function split(total, shares, r) {
    const out = {};
    let left = total;
    shares.forEach(([k, s], i) => {
        const n = i === shares.length - 1 ? left : Math.min(left, Math.round(total * s * (0.85 + 0.3 * r())));
        out[k] = n;
        left -= n;
    });
    return out;
}

// Writes a week of data ending at `end` (Unix s, a UTC midnight) for gob's topics and dev/anemia.
// Returns what was written, for the tests' own bookkeeping.
export async function seed(r, end) {
    const start = end - 7 * 86400;
    const profile = { congreso: 14, elecciones: 9, corrupcion: 4, anemia: 6 };
    const spikeAt = end - 2 * 86400 + 20 * 3600; // 15:00 Lima two days before the end
    const alerts = [];
    for (const [topic, base] of Object.entries(profile)) {
        const team = topic === "anemia" ? "dev" : "gob";
        const key = team + "/" + topic;
        const rand = rng(base * 7919);
        const days = {};
        // the week before, for week-over-week
        for (let h = start - 7 * 86400; h < start; h += 3600) {
            const hourLocal = ((h / 3600) - 5 + 240) % 24;
            const posts = Math.round(base * 0.8 * (0.3 + Math.sin(Math.PI * Math.max(0, hourLocal - 6) / 18) ** 2) * (0.7 + 0.6 * rand()));
            if (posts > 0) {
                await r.cmd("HSET", "esc:c:{" + key + "}:h:" + h, "posts", posts);
            }
        }
        for (let h = start; h < end; h += 3600) {
            const hourLocal = ((h / 3600) - 5 + 240) % 24;
            let posts = Math.round(base * (0.25 + Math.sin(Math.PI * Math.max(0, hourLocal - 6) / 18) ** 2) * (0.7 + 0.6 * rand()));
            if (topic === "congreso" && h >= spikeAt && h < spikeAt + 2 * 3600) {
                posts += h === spikeAt ? 160 : 70;
            }
            if (posts === 0) {
                continue;
            }
            const followers = posts * Math.round(800 + 2400 * rand());
            const likes = Math.round(posts * (2 + 5 * rand()));
            const reposts = Math.round(posts * (0.5 + 2 * rand()));
            const replies = Math.round(posts * (0.3 + rand()));
            const pos = Math.round(posts * (topic === "corrupcion" ? 0.12 : 0.3) * (0.8 + 0.4 * rand()));
            const neg = Math.round(posts * (topic === "corrupcion" ? 0.55 : 0.25) * (0.8 + 0.4 * rand()));
            const neu = Math.max(0, posts - pos - neg);
            const milli = Math.round((pos - neg) * 420 + (rand() - 0.5) * 100);
            const langs = split(posts, LANGS, rand);
            const plats = split(posts, PLATFORMS, rand);
            const f = ["posts", posts, "reach", followers, "likes", likes, "reposts", reposts, "replies", replies,
                "engagement", likes + reposts + replies, "sentiment_pos", pos, "sentiment_neu", neu,
                "sentiment_neg", neg, "sentiment_milli", milli];
            for (const [k, v] of Object.entries(langs)) {
                if (v > 0) {
                    f.push("lang:" + k, v);
                }
            }
            for (const [k, v] of Object.entries(plats)) {
                if (v > 0) {
                    f.push("platform:" + k, v);
                }
            }
            await r.cmd("HSET", "esc:c:{" + key + "}:h:" + h, ...f);
            const day = Math.floor(h / 86400) * 86400;
            days[day] = days[day] || {};
            for (let i = 0; i < f.length; i += 2) {
                days[day][f[i]] = (days[day][f[i]] || 0) + f[i + 1];
            }
            // the last day also has minute buckets
            if (h >= end - 86400) {
                let left = posts;
                for (let m = 0; m < 60 && left > 0; m += 1 + Math.floor(rand() * 6)) {
                    const n = Math.min(left, 1 + Math.floor(rand() * 3));
                    left -= n;
                    await r.cmd("HINCRBY", "esc:c:{" + key + "}:m:" + (h + m * 60), "posts", n);
                }
            }
        }
        for (const [day, f] of Object.entries(days)) {
            await r.cmd("HSET", "esc:c:{" + key + "}:d:" + day, ...Object.entries(f).flat());
            // day top lists
            const dr = rng(Number(day) % 100000 + base);
            for (const a of AUTHORS) {
                const p = 1 + Math.floor(dr() * 6);
                const reach = p * Math.round(500 + 5000 * dr());
                const eng = p * Math.round(3 + 30 * dr());
                const infl = p * (1 + Math.log10(1 + reach / p)) * (1 + Math.log10(1 + eng / p));
                const zk = "esc:top:{" + key + "}:authors:" + day;
                await r.cmd("ZINCRBY", zk, infl.toFixed(3), a);
                await r.cmd("HINCRBY", zk + ":info", "posts:" + a, p);
                await r.cmd("HINCRBY", zk + ":info", "reach:" + a, reach);
                await r.cmd("HINCRBY", zk + ":info", "engagement:" + a, eng);
            }
            for (const term of TERMS) {
                await r.cmd("ZINCRBY", "esc:top:{" + key + "}:terms:" + day, 2 + Math.floor(dr() * 40), term);
            }
            for (const tg of TAGS) {
                await r.cmd("ZINCRBY", "esc:top:{" + key + "}:hashtags:" + day, 1 + Math.floor(dr() * (topic === "congreso" && tg === "congresoperu" ? 60 : 20)), tg);
            }
        }
        await r.cmd("HSET", "esc:t:{" + key + "}", "posts", 1);
    }
    // top posts of the spike day for congreso, one of them carrying markup
    const spikeDay = Math.floor(spikeAt / 86400) * 86400;
    const posts = [
        ["p1", "@rosa.quispe@mastodon.pe", "Rosa Quispe", "El Congreso aprueba la moción de vacancia en primera votación. Sesión tensa y mucha gente siguiéndola en vivo. #CongresoPerú", 412, 18400],
        ["p2", "@jnoticias.bsky.social", "J Noticias", "<script>window.__xss = 1</script> Votación en el pleno: 78 a favor, 24 en contra. Seguimos informando.", 268, 52100],
        ["p3", "@observatorio.pe", "Observatorio", "Análisis: qué significa la vacancia para el calendario electoral de 2026 y qué dice la Constitución.", 144, 9100],
    ];
    for (const [id, author, name, text, eng, followers] of posts) {
        await r.cmd("ZADD", "esc:top:{gob/congreso}:posts:" + spikeDay, eng, "mastodon:" + id);
        await r.cmd("HSET", "esc:post:{gob/congreso}:mastodon:" + id, "text", text, "author", author, "author_name", name,
            "url", "https://example.org/" + id, "platform", "mastodon", "created_at", String((spikeAt + 600) * 1000),
            "likes", Math.round(eng * 0.7), "reposts", Math.round(eng * 0.2), "replies", Math.round(eng * 0.1),
            "engagement", eng, "followers", followers, "language", "es", "sentiment", "-0.1");
    }
    alerts.push({ id: "gob/congreso/" + spikeAt * 1000, team: "gob", topic: "congreso", topic_name: "Congreso", kind: "spike",
        window_start: spikeAt * 1000, window_end: (spikeAt + 1800) * 1000, observed: 171, expected: 12.4, score: 13.8,
        ts: (spikeAt + 1900) * 1000 });
    for (const a of alerts) {
        await r.cmd("LPUSH", "esc:alerts:{gob}", JSON.stringify(a));
    }
    await r.cmd("LPUSH", "esc:alerts:{dev}", JSON.stringify({ id: "dev/anemia/1", team: "dev", topic: "anemia",
        topic_name: "Anemia infantil", kind: "spike", window_start: (end - 86400) * 1000, window_end: (end - 84600) * 1000,
        observed: 33, expected: 5 }));
    return { spikeAt };
}

// Sums field over the hour buckets of key in [from, to) straight from Redis.
export async function sumHours(r, key, field, from, to) {
    let s = 0;
    for (let h = from; h < to; h += 3600) {
        const v = await r.cmd("HGET", "esc:c:{" + key + "}:h:" + h, field);
        s += v ? Number(v) : 0;
    }
    return s;
}
