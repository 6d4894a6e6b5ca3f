// Small pieces several views use: cards, KPI tiles, bar lists, range picker, errors.
import { h } from "./dom.js";
import { num, pct } from "./format.js";
import { t } from "./i18n.js";
import { RANGES, state } from "./state.js";

export function card(title, body, extra) {
    return h("section", { class: "card" },
        h("header", { class: "card-head" }, h("h3", null, title), extra || null),
        body);
}

export function kpi(id, label, value, text) {
    return h("div", { class: "kpi", dataset: { testid: "kpi-" + id, value: String(value ?? "") } },
        h("div", { class: "kpi-label" }, label),
        h("div", { class: "kpi-value" }, text ?? num(value)));
}

// rows: [{label, value, color?}] -> horizontal bars with counts and shares.
export function barList(rows, testid) {
    const total = rows.reduce((a, r) => a + r.value, 0);
    if (!rows.length || total === 0) {
        return h("p", { class: "muted" }, t("nothing"));
    }
    const max = Math.max(...rows.map((r) => r.value));
    return h("ul", { class: "bars", dataset: { testid } },
        rows.map((r) => h("li", { dataset: { key: r.label, value: String(r.value) } },
            h("span", { class: "bar-label" }, r.label),
            h("span", { class: "bar-track" },
                h("span", { class: "bar-fill", style: { width: (100 * r.value / max).toFixed(1) + "%", background: r.color || "" } })),
            h("span", { class: "bar-num" }, num(r.value)),
            h("span", { class: "bar-pct muted" }, pct(100 * r.value / total)))));
}

export function rangePicker(onChange) {
    return h("div", { class: "seg", role: "group", "aria-label": t("range") },
        Object.keys(RANGES).map((k) => h("button", {
            class: k === state.range ? "on" : "",
            dataset: { range: k },
            onclick: () => {
                state.range = k;
                onChange();
            },
        }, k)));
}

export function errorBox(err, retry) {
    return h("div", { class: "error", role: "alert" },
        h("strong", null, t("error") + ": "), err.message || String(err),
        retry ? h("button", { class: "link", onclick: retry }, t("retry")) : null);
}

export function loading() {
    return h("p", { class: "muted loading" }, t("loading"));
}
