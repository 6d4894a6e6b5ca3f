// What the views share: who is signed in, the current team, the chosen period, and the
// AbortController of the current view (aborted when the route changes: live streams stop).
import { setZone } from "./format.js";
import { defaultLang } from "./i18n.js";

export const state = {
    me: null,
    team: null,          // GET /teams/{id}
    range: "7d",
    view: new AbortController(),
    flash: null,         // a message for the next view (e.g. "saved" after a create)
};

export const RANGES = {
    "6h": { span: 6 * 3600, res: "minute" },
    "24h": { span: 86400, res: "hour" },
    "7d": { span: 7 * 86400, res: "hour" },
    "30d": { span: 30 * 86400, res: "day" },
    "90d": { span: 90 * 86400, res: "day" },
};

export function setTeam(team) {
    state.team = team;
    setZone(team.timezone || "UTC");
    defaultLang(team.language);
}

// The end of the period: now, or the end of the team's last day with data when that is
// earlier (a replayed or paused deployment still opens on its data).
export function anchorEnd() {
    const now = Math.floor(Date.now() / 1000);
    const last = state.team && state.team.latest_day;
    if (last && last + 86400 < now) {
        return last + 86400;
    }
    return now;
}

export function period() {
    const r = RANGES[state.range] || RANGES["7d"];
    const to = anchorEnd();
    return { from: to - r.span, to, res: r.res };
}

export function canEdit() {
    return state.team && (state.team.role === "editor" || state.team.role === "admin");
}

export function newView() {
    state.view.abort();
    state.view = new AbortController();
    return state.view.signal;
}
