// Topic editor for a team's editors: the list of topics, a form with live query validation
// (the API runs the classifier's own validator and answers with positions), the team's
// exclusion lists and the audit of recent changes.
import { api } from "../api.js";
import { h, replace } from "../dom.js";
import { dateTime } from "../format.js";
import { t } from "../i18n.js";
import { canEdit, state } from "../state.js";
import { card, errorBox, loading } from "../widgets.js";

export async function editorListView(root, signal, reloadTeam) {
    const team = state.team;
    const audit = h("div", null, loading());
    const excl = h("div", null, loading());
    root.append(
        h("div", { class: "page-head" }, h("h1", null, t("topics")),
            canEdit() ? h("a", { class: "button primary", href: "#/t/" + team.id + "/topics/new", dataset: { testid: "new-topic" } }, "+ " + t("new_topic")) : null),
        canEdit() ? null : h("p", { class: "notice" }, t("viewer_only")),
        h("div", { class: "card" }, h("table", { class: "table", dataset: { testid: "topic-list" } },
            h("tbody", null, team.topics.map((tp) => h("tr", { dataset: { topic: tp.id } },
                h("td", null, h("strong", null, tp.name), h("div", { class: "muted small" }, tp.id)),
                h("td", { class: "muted small" }, tp.query || (tp.keywords || []).join(", ")),
                h("td", { class: "muted small" }, tp.source === "api" ? t("source_api") : t("source_config")),
                h("td", { class: "r" }, canEdit() ? h("a", { class: "button ghost", href: "#/t/" + team.id + "/topics/" + tp.id }, t("edit")) : null)))))),
        canEdit() ? h("div", { class: "cols two" }, card(t("exclusions"), excl), card(t("audit"), audit)) : null);
    if (!canEdit()) {
        return;
    }
    try {
        const [ex, au] = await Promise.all([
            api("/teams/" + team.id + "/exclude", { signal }),
            api("/teams/" + team.id + "/audit?limit=15", { signal }),
        ]);
        replace(excl, exclusionForm(ex, reloadTeam));
        replace(audit, auditList(au.audit));
    } catch (e) {
        if (!signal.aborted) {
            replace(audit, errorBox(e));
        }
    }
}

function lines(s) {
    return s.split("\n").map((x) => x.trim()).filter(Boolean);
}

function exclusionForm(ex, reloadTeam) {
    const fields = {};
    const msg = h("p", { class: "small", role: "status" });
    const mk = (key, label) => {
        fields[key] = h("textarea", { rows: 3, dataset: { field: key }, value: (ex[key] || []).join("\n") });
        return h("label", { class: "field" }, h("span", null, label), fields[key]);
    };
    return h("form", { onsubmit: async (e) => {
        e.preventDefault();
        try {
            await api("/teams/" + state.team.id + "/exclude", { method: "PUT", body: {
                authors: lines(fields.authors.value), sites: lines(fields.sites.value), phrases: lines(fields.phrases.value) } });
            msg.textContent = t("saved");
            msg.className = "small ok";
            reloadTeam();
        } catch (err) {
            msg.textContent = err.message;
            msg.className = "small error-text";
        }
    } }, mk("authors", t("authors_ex")), mk("sites", t("sites_ex")), mk("phrases", t("phrases_ex")),
    h("button", { type: "submit", class: "primary" }, t("save")), msg);
}

function auditList(entries) {
    if (!entries.length) {
        return h("p", { class: "muted" }, t("nothing"));
    }
    return h("ul", { class: "audit", dataset: { testid: "audit" } }, entries.map((e) => h("li", null,
        h("strong", null, e.who), " ", t("action_" + e.action), " ",
        e.topic ? h("code", null, e.topic) : null,
        h("span", { class: "muted small" }, " · " + dateTime(Math.floor(e.ts / 1000))))));
}

// Shows the query with the character at column col (1-based, code points) marked.
function caret(query, col) {
    const chars = Array.from(query);
    const i = Math.max(0, Math.min(chars.length, col - 1));
    return h("div", { class: "caret" },
        chars.slice(0, i).join(""),
        h("mark", null, chars[i] || " "),
        chars.slice(i + 1).join(""));
}

// A query textarea that asks the API to validate it while typing.
function queryField(label, field, value) {
    const ta = h("textarea", { rows: 3, class: "mono", dataset: { field }, value: value || "", spellcheck: "false" });
    const out = h("div", { class: "validation", dataset: { testid: "validation-" + field }, role: "status" });
    let timer = null;
    let seq = 0;
    const check = async () => {
        const q = ta.value;
        const my = ++seq;
        if (!q.trim()) {
            replace(out);
            out.dataset.state = "";
            return;
        }
        out.dataset.state = "checking";
        replace(out, h("span", { class: "muted small" }, t("query_checking")));
        try {
            const r = await api("/teams/" + state.team.id + "/validate", { method: "POST", body: { query: q, field } });
            if (my !== seq) {
                return;
            }
            out.dataset.state = r.ok ? "ok" : "error";
            replace(out,
                r.ok ? h("span", { class: "ok small" }, "✓ " + t("query_ok")) : null,
                r.messages.map((m) => h("div", { class: m.severity === "error" ? "error-text small" : "warn small" },
                    m.column ? t("column", { n: m.column }) + ": " : "", m.message,
                    m.column ? caret(q, m.column) : null)));
        } catch (e) {
            if (my === seq) {
                out.dataset.state = "error";
                replace(out, h("span", { class: "error-text small" }, e.message));
            }
        }
    };
    ta.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(check, 350);
    });
    if (value) {
        check();
    }
    return { el: h("label", { class: "field" }, h("span", null, label), ta, out), ta };
}

export async function editorView(root, signal, id, reloadTeam) {
    const team = state.team;
    const isNew = id === "new";
    const topic = isNew ? { id: "", name: "", keywords: [], query: null, exclude: null, fold_enye: false }
        : team.topics.find((x) => x.id === id);
    if (!topic || !canEdit()) {
        root.append(errorBox(new Error(canEdit() ? "no such topic" : t("viewer_only"))));
        return;
    }
    const idIn = h("input", { type: "text", value: topic.id, disabled: !isNew, dataset: { field: "id" }, pattern: "[a-z0-9][a-z0-9_-]{0,63}" });
    const nameIn = h("input", { type: "text", value: topic.name || "", dataset: { field: "name" } });
    const kwIn = h("textarea", { rows: 5, dataset: { field: "keywords" }, value: (topic.keywords || []).join("\n") });
    const q = queryField(t("query"), "query", topic.query);
    const ex = queryField(t("exclude"), "exclude", topic.exclude);
    const fold = h("input", { type: "checkbox", checked: !!topic.fold_enye, dataset: { field: "fold_enye" } });
    const msg = h("div", { class: "small", role: "status", dataset: { testid: "save-result" } });
    if (state.flash) {
        msg.className = "small ok";
        msg.dataset.state = "ok";
        msg.textContent = state.flash;
        state.flash = null;
    }
    const save = async (e) => {
        e.preventDefault();
        const body = { name: nameIn.value.trim() || undefined, keywords: lines(kwIn.value),
            query: q.ta.value.trim() || null, exclude: ex.ta.value.trim() || null, fold_enye: fold.checked };
        try {
            let r;
            if (isNew) {
                body.id = idIn.value.trim();
                r = await api("/teams/" + team.id + "/topics", { method: "POST", body });
            } else {
                r = await api("/teams/" + team.id + "/topics/" + topic.id, { method: "PUT", body });
            }
            msg.className = "small ok";
            msg.dataset.state = "ok";
            msg.textContent = t("saved");
            await reloadTeam();
            if (isNew) {
                state.flash = t("saved");
                location.hash = "#/t/" + team.id + "/topics/" + r.topic.id;
            }
        } catch (err) {
            msg.className = "small error-text";
            msg.dataset.state = "error";
            replace(msg, err.message, (err.details || []).map((d) => h("div", null, d.field + (d.column ? " (" + t("column", { n: d.column }) + ")" : "") + ": " + d.message)));
        }
    };
    const del = async () => {
        if (!confirm(t("confirm_delete", { name: topic.name }))) {
            return;
        }
        try {
            await api("/teams/" + team.id + "/topics/" + topic.id, { method: "DELETE" });
            await reloadTeam();
            location.hash = "#/t/" + team.id + "/topics";
        } catch (err) {
            msg.className = "small error-text";
            msg.textContent = err.message;
        }
    };
    root.append(
        h("div", { class: "page-head" }, h("h1", null, isNew ? t("new_topic") : topic.name)),
        h("form", { class: "card editor", onsubmit: save, dataset: { testid: "topic-form" } },
            h("div", { class: "cols two" },
                h("label", { class: "field" }, h("span", null, t("id")), idIn),
                h("label", { class: "field" }, h("span", null, t("name")), nameIn)),
            h("label", { class: "field" }, h("span", null, t("keywords")), kwIn),
            q.el, ex.el,
            h("label", { class: "check" }, fold, t("fold_enye")),
            h("div", { class: "actions" },
                h("button", { type: "submit", class: "primary", dataset: { testid: "save" } }, t("save")),
                isNew ? null : h("button", { type: "button", class: "danger", onclick: del }, t("delete"))),
            msg));
}
