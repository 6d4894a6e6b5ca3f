// Share of voice between topics over the chosen period: one chart with a line per topic, a
// stacked share bar and the table.
import { api } from "../api.js";
import { PALETTE, timeChart } from "../charts.js";
import { h, replace } from "../dom.js";
import { num, pct } from "../format.js";
import { t } from "../i18n.js";
import { period, state } from "../state.js";
import { card, errorBox, loading, rangePicker } from "../widgets.js";

let chosen = null;

export async function compareView(root, signal, rerender) {
    const team = state.team;
    if (!chosen || chosen.team !== team.id) {
        chosen = { team: team.id, ids: new Set(team.topics.slice(0, 6).map((x) => x.id)) };
    }
    const { from, to, res } = period();
    const body = h("div", null, loading());
    const picks = h("div", { class: "picks" }, team.topics.map((tp) => h("label", { class: "check" },
        h("input", { type: "checkbox", checked: chosen.ids.has(tp.id), dataset: { topic: tp.id }, onchange: (e) => {
            if (e.target.checked) {
                chosen.ids.add(tp.id);
            } else {
                chosen.ids.delete(tp.id);
            }
            rerender();
        } }), tp.name)));
    root.append(
        h("div", { class: "page-head" }, h("h1", null, t("share_of_voice")), h("div", { class: "head-tools" }, rangePicker(rerender))),
        card(t("choose_topics"), picks),
        body);
    const ids = team.topics.map((x) => x.id).filter((x) => chosen.ids.has(x));
    if (!ids.length) {
        replace(body, h("p", { class: "muted" }, t("nothing")));
        return;
    }
    try {
        const doc = await api("/teams/" + team.id + "/compare?topics=" + ids.join(",") + "&from=" + from + "&to=" + to + "&res=" + res, { signal });
        const chart = h("div", { class: "chart" });
        const bar = h("div", { class: "share-bar", dataset: { testid: "share-bar" } }, doc.topics.map((x, i) => x.share ? h("span", {
            style: { width: x.share + "%", background: PALETTE[i % PALETTE.length] }, title: x.name + " " + pct(x.share) }) : null));
        const table = h("table", { class: "table", dataset: { testid: "share-table" } },
            h("thead", null, h("tr", null, h("th", null, ""), h("th", { class: "r" }, t("posts")), h("th", { class: "r" }, t("share")))),
            h("tbody", null, doc.topics.map((x, i) => h("tr", { dataset: { topic: x.id, posts: String(x.posts), share: String(x.share ?? "") } },
                h("td", null, h("span", { class: "swatch", style: { background: PALETTE[i % PALETTE.length] } }), x.name),
                h("td", { class: "r" }, num(x.posts)),
                h("td", { class: "r" }, pct(x.share))))));
        replace(body, h("div", { class: "stack" }, card(t("share"), h("div", null, bar, table)), card(t("volume"), chart)));
        timeChart(chart, doc.t, doc.topics.map((x, i) => ({ label: x.name, values: x.series, color: PALETTE[i % PALETTE.length] })), { height: 280, timeLabel: t("when") });
    } catch (e) {
        if (!signal.aborted) {
            replace(body, errorBox(e, rerender));
        }
    }
}
