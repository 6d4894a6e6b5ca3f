// Topic page: KPIs, volume with spikes marked, reach and engagement, language / platform /
// sentiment splits, top authors, hashtags and posts, alerts, and the live panel of posts
// arriving now. Every text that comes from a post is put in the page as a text node.
import { api, download, stream } from "../api.js";
import { PALETTE, timeChart } from "../charts.js";
import { h, replace } from "../dom.js";
import { clock, compact, dateTime, num, sentiment } from "../format.js";
import { t } from "../i18n.js";
import { period, state } from "../state.js";
import { barList, card, errorBox, kpi, loading, rangePicker } from "../widgets.js";
import { alertList } from "./overview.js";

const LIVE_MAX = 50;

export async function topicView(root, signal, id, rerender) {
    const team = state.team;
    const topic = team.topics.find((x) => x.id === id);
    if (!topic) {
        root.append(errorBox(new Error("no such topic")));
        return;
    }
    const { from, to, res } = period();
    const base = "/teams/" + team.id + "/topics/" + id;
    const q = "?from=" + from + "&to=" + to;
    const kpis = h("div", { class: "kpis" }, loading());
    const volume = h("div", { class: "chart", dataset: { testid: "volume-chart" } });
    const reach = h("div", { class: "chart" });
    const langs = h("div", null, loading());
    const plats = h("div", null, loading());
    const sent = h("div", null, loading());
    const authors = h("div", null, loading());
    const tags = h("div", null, loading());
    const terms = h("div", null, loading());
    const posts = h("div", null, loading());
    const alerts = h("div", null, loading());
    const live = livePanel(team.id, id, signal);
    const spikeNote = h("span", { class: "muted small" });

    root.append(
        h("div", { class: "page-head" },
            h("div", null,
                h("h1", { dataset: { testid: "topic-name" } }, topic.name),
                h("p", { class: "muted chips" },
                    (topic.keywords || []).slice(0, 8).map((k) => h("span", { class: "chip" }, k)),
                    topic.query ? h("code", { class: "chip q" }, topic.query) : null)),
            h("div", { class: "head-tools" },
                rangePicker(rerender),
                h("button", { class: "ghost", dataset: { testid: "export-csv" }, onclick: () => download(base + "/series.csv" + q + "&res=" + res,
                    team.id + "-" + id + ".csv") }, "↓ " + t("export_csv")))),
        kpis,
        h("div", { class: "cols main-side" },
            h("div", { class: "stack" },
                card(t("volume"), volume, spikeNote),
                card(t("reach_engagement"), reach)),
            live),
        h("div", { class: "cols three" },
            card(t("languages"), langs), card(t("platforms"), plats), card(t("sentiment"), sent)),
        h("div", { class: "cols two" },
            card(t("top_authors"), authors),
            h("div", { class: "stack" }, card(t("top_hashtags"), tags), card(t("top_terms"), terms))),
        h("div", { class: "cols main-side" },
            card(t("top_posts"), posts),
            card(t("alerts"), alerts)));

    try {
        const [sum, ser, al, ta, th, tp, tt] = await Promise.all([
            api(base + "/summary" + q + "&res=" + res, { signal }),
            api(base + "/series" + q + "&res=" + res, { signal }),
            api("/teams/" + team.id + "/alerts?topic=" + id + "&from=" + from + "&to=" + to, { signal }),
            api(base + "/top/authors" + q + "&limit=10", { signal }),
            api(base + "/top/hashtags" + q + "&limit=12", { signal }),
            api(base + "/top/posts" + q + "&limit=6", { signal }),
            api(base + "/top/terms" + q + "&limit=15", { signal }),
        ]);
        replace(kpis,
            kpi("posts", t("posts"), sum.posts),
            kpi("reach", t("reach"), sum.reach),
            kpi("engagement", t("engagement"), sum.engagement),
            kpi("sentiment", t("avg_sentiment"), sum.sentiment.average, sentiment(sum.sentiment.average)));
        // spikes, widened to whole buckets so they show at any resolution
        const bands = al.alerts.map((a) => ({
            from: Math.floor(a.window_start / 1000 / ser.step) * ser.step,
            to: Math.ceil(a.window_end / 1000 / ser.step) * ser.step,
        }));
        spikeNote.textContent = bands.length ? "▮ " + bands.length + " " + t(bands.length === 1 ? "spike_one" : "spikes") : "";
        timeChart(volume, ser.t, [{ label: t("posts"), values: ser.series.posts, color: PALETTE[0], fill: true }],
            { bands, height: 260, timeLabel: t("when") });
        timeChart(reach, ser.t, [
            { label: t("reach"), values: ser.series.reach, color: PALETTE[1] },
            { label: t("engagement"), values: ser.series.engagement, color: PALETTE[2], scale: "right" },
        ], { height: 200, timeLabel: t("when") });
        replace(langs, barList(sorted(sum.languages), "languages"));
        replace(plats, barList(sorted(sum.platforms), "platforms"));
        replace(sent, barList([
            { label: t("positive"), value: sum.sentiment.positive, color: "#16a34a" },
            { label: t("neutral"), value: sum.sentiment.neutral, color: "#94a3b8" },
            { label: t("negative"), value: sum.sentiment.negative, color: "#dc2626" },
        ], "sentiment"));
        replace(authors, authorTable(ta.items));
        replace(tags, tagCloud(th.items, "#", "top-hashtags"));
        replace(terms, tagCloud(tt.items, "", "top-terms"));
        replace(posts, postList(tp.items));
        replace(alerts, alertList(al.alerts, false));
    } catch (e) {
        if (!signal.aborted) {
            replace(kpis, errorBox(e, rerender));
        }
    }
}

function sorted(obj) {
    return Object.entries(obj || {}).map(([label, value]) => ({ label, value }))
        .sort((a, b) => b.value - a.value).slice(0, 8);
}

function authorTable(items) {
    if (!items.length) {
        return h("p", { class: "muted" }, t("nothing"));
    }
    return h("table", { class: "table", dataset: { testid: "top-authors" } },
        h("thead", null, h("tr", null, h("th", null, "#"), h("th", null, ""), h("th", { class: "r" }, t("posts")),
            h("th", { class: "r" }, t("reach")), h("th", { class: "r" }, t("engagement")))),
        h("tbody", null, items.map((a, i) => h("tr", null,
            h("td", { class: "muted" }, String(i + 1)),
            h("td", { class: "author" }, a.key),
            h("td", { class: "r" }, num(a.posts)),
            h("td", { class: "r" }, compact(a.reach)),
            h("td", { class: "r" }, compact(a.engagement))))));
}

function tagCloud(items, mark, testid) {
    if (!items.length) {
        return h("p", { class: "muted" }, t("nothing"));
    }
    const max = Math.max(...items.map((x) => x.posts));
    return h("div", { class: "tags" + (mark ? "" : " terms"), dataset: { testid } }, items.map((x) => h("span", {
        class: "tag", style: { fontSize: (0.8 + 0.5 * x.posts / max).toFixed(2) + "rem" },
        dataset: { key: x.key, value: String(x.posts) } }, mark + x.key, h("small", null, " " + num(x.posts)))));
}

function postCard(p, opts = {}) {
    const when = p.created_at ? (opts.clock ? clock(p.created_at) : dateTime(Math.floor(p.created_at / 1000))) : "";
    return h("article", { class: "post" + (opts.fresh ? " fresh" : ""), dataset: { testid: opts.testid || "post" } },
        h("header", null,
            h("span", { class: "author" }, p.author || p.author_name || "?"),
            p.platform ? h("span", { class: "pill" }, p.platform) : null,
            p.lang || p.language ? h("span", { class: "pill light" }, p.lang || p.language) : null,
            h("span", { class: "muted small" }, when)),
        h("p", { class: "post-text", dataset: { testid: "post-text" } }, p.text || ""),
        h("footer", { class: "muted small" },
            p.engagement != null ? num(p.engagement) + " " + t("engagement_short") : null,
            p.followers ? " · " + compact(p.followers) + " " + t("followers") : null,
            p.url ? h("a", { href: p.url, target: "_blank", rel: "noopener noreferrer" }, " ↗") : null));
}

function postList(items) {
    if (!items.length) {
        return h("p", { class: "muted" }, t("nothing"));
    }
    return h("div", { class: "posts", dataset: { testid: "top-posts" } }, items.map((p) => postCard(p)));
}

function livePanel(team, topic, signal) {
    const list = h("div", { class: "live-list", dataset: { testid: "live-list" } },
        h("p", { class: "muted waiting" }, t("live_waiting")));
    const dot = h("span", { class: "dot", dataset: { testid: "live-state" } });
    const label = h("span", { class: "muted small" });
    const panel = card(h("span", null, h("span", { class: "live-badge" }, "●"), " " + t("live")), list, h("span", null, dot, label));
    panel.classList.add("live");
    stream("/teams/" + team + "/live?topic=" + encodeURIComponent(topic) + "&replay=20", (ev) => {
        if (ev.event !== "post") {
            return;
        }
        let p;
        try {
            p = JSON.parse(ev.data);
        } catch {
            return;
        }
        const waiting = list.querySelector(".waiting");
        if (waiting) {
            waiting.remove();
        }
        const el = postCard(p, { clock: true, fresh: true, testid: "live-post" });
        list.insertBefore(el, list.firstChild);
        setTimeout(() => el.classList.remove("fresh"), 1500);
        while (list.children.length > LIVE_MAX) {
            list.removeChild(list.lastChild);
        }
    }, (st) => {
        dot.className = "dot " + st;
        dot.dataset.state = st;
        label.textContent = " " + (st === "open" ? t("live_connected") : t("live_closed"));
    }, signal);
    return panel;
}
