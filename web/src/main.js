// escucha dashboard: a single page with hash routes, served by escucha-api.
//   #/                      -> sign in, then the first team
//   #/t/TEAM                -> overview        #/t/TEAM/topic/ID -> topic page
//   #/t/TEAM/compare        -> share of voice  #/t/TEAM/topics[/ID|/new] -> topic editor
import "uplot/dist/uPlot.min.css";
import "./style.css";

import { api, clearToken, setUnauthorizedHandler, token } from "./api.js";
import { h, replace } from "./dom.js";
import { currentLang, setLang, t } from "./i18n.js";
import { newView, setTeam, state } from "./state.js";
import { compareView } from "./views/compare.js";
import { editorListView, editorView } from "./views/editor.js";
import { loginView } from "./views/login.js";
import { overviewView } from "./views/overview.js";
import { topicView } from "./views/topic.js";
import { errorBox, loading } from "./widgets.js";

const app = document.getElementById("app");

function parseRoute() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    return parts[0] === "t" ? { team: parts[1], page: parts[2] || "", arg: parts[3] || "" } : { team: null };
}

async function loadTeam(id) {
    const team = await api("/teams/" + encodeURIComponent(id));
    setTeam(team);
    return team;
}

function shell(route) {
    const team = state.team;
    const link = (href, label, on, testid) => h("a", { href, class: on ? "on" : "", dataset: { testid } }, label);
    const teams = state.me.teams.length > 1
        ? h("select", { class: "team-select", "aria-label": t("team"), onchange: (e) => {
            location.hash = "#/t/" + e.target.value;
        } }, state.me.teams.map((x) => h("option", { value: x.id, selected: x.id === team.id }, x.name)))
        : h("span", { class: "team-name" }, team.name);
    const main = h("main", { class: "content" });
    replace(app,
        h("header", { class: "top" },
            h("a", { class: "brand", href: "#/t/" + team.id }, h("span", { class: "logo" }), "escucha"),
            teams,
            h("nav", null,
                link("#/t/" + team.id, t("overview"), route.page === "" || route.page === "topic", "nav-overview"),
                link("#/t/" + team.id + "/compare", t("compare"), route.page === "compare", "nav-compare"),
                link("#/t/" + team.id + "/topics", t("editor"), route.page === "topics", "nav-topics")),
            h("div", { class: "spacer" }),
            h("div", { class: "seg small", role: "group", "aria-label": "language" },
                ["es", "en"].map((l) => h("button", { class: currentLang() === l ? "on" : "", dataset: { lang: l },
                    onclick: () => {
                        setLang(l);
                        render();
                    } }, l.toUpperCase()))),
            h("span", { class: "who muted small", title: state.me.role }, state.me.name),
            h("button", { class: "ghost small", dataset: { testid: "logout" }, onclick: () => {
                clearToken();
                state.me = null;
                location.hash = "#/";
                render();
            } }, t("logout"))),
        main);
    return main;
}

async function render() {
    const signal = newView();
    document.documentElement.lang = currentLang();
    if (!token()) {
        replace(app);
        loginView(app, (me) => {
            state.me = me;
            location.hash = me.teams.length ? "#/t/" + me.teams[0].id : "#/";
            render();
        });
        return;
    }
    try {
        if (!state.me) {
            state.me = await api("/me");
        }
        // a newer render (route change) started while this one waited: it owns the page
        if (signal.aborted) {
            return;
        }
        const route = parseRoute();
        if (!route.team) {
            if (state.me.teams.length) {
                location.hash = "#/t/" + state.me.teams[0].id;
            }
            return;
        }
        if (!state.team || state.team.id !== route.team) {
            replace(app, loading());
            const team = await api("/teams/" + encodeURIComponent(route.team));
            if (signal.aborted) {
                return;
            }
            setTeam(team);
        }
        document.documentElement.lang = currentLang();
        const main = shell(route);
        const reloadTeam = () => loadTeam(route.team);
        if (route.page === "topic") {
            await topicView(main, signal, route.arg, render);
        } else if (route.page === "compare") {
            await compareView(main, signal, render);
        } else if (route.page === "topics" && route.arg) {
            await editorView(main, signal, route.arg, reloadTeam);
        } else if (route.page === "topics") {
            await editorListView(main, signal, reloadTeam);
        } else {
            await overviewView(main, signal);
        }
    } catch (e) {
        if (signal.aborted) {
            return;
        }
        if (!token()) {
            render();
            return;
        }
        replace(app, h("div", { class: "content" }, errorBox(e, () => {
            state.team = null;
            render();
        })));
    }
}

setUnauthorizedHandler(() => {
    clearToken();
    state.me = null;
    state.team = null;
});
window.addEventListener("hashchange", render);
render();
