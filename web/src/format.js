// Number and time formatting in the UI language and the team's time zone.
import { currentLang } from "./i18n.js";

let zone = "UTC";

export function setZone(z) {
    try {
        new Intl.DateTimeFormat("en", { timeZone: z });
        zone = z;
    } catch {
        zone = "UTC";
    }
}

export function timeZone() {
    return zone;
}

function locale() {
    return currentLang() === "en" ? "en-GB" : "es-PE";
}

export function num(n) {
    return new Intl.NumberFormat(locale()).format(n ?? 0);
}

export function compact(n) {
    return new Intl.NumberFormat(locale(), { notation: "compact", maximumFractionDigits: 1 }).format(n ?? 0);
}

export function pct(p, signed) {
    if (p == null) {
        return "–";
    }
    const s = new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(Math.abs(p)) + " %";
    if (!signed) {
        return s;
    }
    return (p > 0 ? "+" : p < 0 ? "−" : "±") + s;
}

export function sentiment(x) {
    if (x == null) {
        return "–";
    }
    return (x > 0 ? "+" : "") + new Intl.NumberFormat(locale(), { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(x);
}

export function dateTime(sec) {
    return new Intl.DateTimeFormat(locale(), {
        timeZone: zone, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
    }).format(new Date(sec * 1000));
}

export function date(sec) {
    return new Intl.DateTimeFormat(locale(), { timeZone: zone, day: "numeric", month: "short", year: "numeric" }).format(new Date(sec * 1000));
}

export function clock(ms) {
    return new Intl.DateTimeFormat(locale(), { timeZone: zone, hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(new Date(ms));
}

// Offset of the team's zone from UTC at time sec, in seconds (for chart axes).
export function zoneOffset(sec) {
    const d = new Date(sec * 1000);
    const parts = new Intl.DateTimeFormat("en-US", {
        timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).formatToParts(d);
    const v = Object.fromEntries(parts.map((p) => [p.type, p.value]));
    const local = Date.UTC(+v.year, +v.month - 1, +v.day, +v.hour, +v.minute, +v.second);
    return Math.round((local - d.getTime()) / 1000);
}

// A chart tick: the day at midnight (in the team's zone) or when ticks are a day or more
// apart, else the hour.
export function axisTime(sec, incr) {
    const d = new Date(sec * 1000);
    const hm = new Intl.DateTimeFormat(locale(), { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(d);
    if (incr >= 86400 || hm === "00:00") {
        return new Intl.DateTimeFormat(locale(), { timeZone: zone, day: "numeric", month: "short" }).format(d);
    }
    return hm;
}
