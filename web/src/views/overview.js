// Team overview: every topic with its posts of the last 7 days, the change against the week
// before and an hourly sparkline; the team's recent alerts.
import { api } from "../api.js";
import { sparkline, PALETTE } from "../charts.js";
import { h, replace } from "../dom.js";
import { dateTime, num, pct } from "../format.js";
import { t } from "../i18n.js";
import { anchorEnd, state } from "../state.js";
import { card, errorBox, loading } from "../widgets.js";

export async function overviewView(root, signal) {
    const team = state.team;
    const grid = h("div", { class: "topic-grid", dataset: { testid: "overview" } }, loading());
    const alerts = h("div", null, loading());
    root.append(
        h("div", { class: "page-head" },
            h("div", null, h("h1", null, team.name), h("p", { class: "muted" }, t("last7"), " · ", t("until"), " ", dateTime(anchorEnd())))),
        grid,
        card(t("alerts"), alerts));
    try {
        const [ov, al] = await Promise.all([
            api("/teams/" + team.id + "/overview?end=" + anchorEnd(), { signal }),
            api("/teams/" + team.id + "/alerts?limit=10", { signal }),
        ]);
        replace(grid, ov.topics.map((tp, i) => topicCard(tp, i)));
        replace(alerts, alertList(al.alerts, true));
    } catch (e) {
        if (!signal.aborted) {
            replace(grid, errorBox(e, () => location.reload()));
        }
    }
}

function topicCard(tp, i) {
    const up = tp.change_pct != null && tp.change_pct > 0;
    const down = tp.change_pct != null && tp.change_pct < 0;
    return h("a", { class: "topic-card", href: "#/t/" + state.team.id + "/topic/" + tp.id,
        dataset: { testid: "topic-card", topic: tp.id } },
    h("div", { class: "tc-head" },
        h("span", { class: "tc-name" }, tp.name),
        h("span", { class: "delta " + (up ? "up" : down ? "down" : "flat"), dataset: { testid: "change", value: String(tp.change_pct ?? "") },
            title: tp.change_pct == null ? t("no_prev") : t("vs_prev") }, tp.change_pct == null ? "–" : (up ? "▲ " : down ? "▼ " : "") + pct(tp.change_pct, true))),
    h("div", { class: "tc-num", dataset: { testid: "posts", value: String(tp.posts) } }, num(tp.posts)),
    h("div", { class: "muted small" }, t("posts"), " · ", t("last7")),
    sparkline(tp.hourly, { color: PALETTE[i % PALETTE.length], label: tp.name }));
}

export function alertList(alerts, withTopic) {
    if (!alerts.length) {
        return h("p", { class: "muted" }, t("no_alerts"));
    }
    return h("ul", { class: "alerts", dataset: { testid: "alerts" } }, alerts.map((a) => h("li", null,
        h("span", { class: "pill " + (a.kind === "ended" ? "calm" : "hot") }, t(a.kind === "ended" ? "kind_ended" : "kind_spike")),
        withTopic ? h("a", { href: "#/t/" + state.team.id + "/topic/" + a.topic }, a.topic_name || a.topic) : null,
        h("span", { class: "muted" }, dateTime(Math.floor((a.window_start || 0) / 1000))),
        a.observed != null ? h("span", null, num(a.observed), " ", t("posts").toLowerCase(),
            a.expected != null ? h("span", { class: "muted" }, " (", "≈", num(Math.round(a.expected)), ")") : null) : null)));
}
