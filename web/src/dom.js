// Tiny DOM helpers. Everything the dashboard shows is built with createElement and text
// nodes: a string child always becomes a text node, so text from posts, authors or topic
// names can never be read as HTML. There is no innerHTML anywhere in the dashboard.

export function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    setProps(el, props);
    append(el, kids);
    return el;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v != null) {
            el.setAttribute(k, String(v));
        }
    }
    append(el, kids);
    return el;
}

function setProps(el, props) {
    for (const [k, v] of Object.entries(props || {})) {
        if (v == null || v === false) {
            continue;
        }
        if (k === "class") {
            el.className = v;
        } else if (k === "style") {
            Object.assign(el.style, v);
        } else if (k === "dataset") {
            Object.assign(el.dataset, v);
        } else if (k.startsWith("on") && typeof v === "function") {
            el.addEventListener(k.slice(2), v);
        } else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") {
            el[k] = v;
        } else if (k === "href") {
            const safe = safeUrl(v);
            if (safe) {
                el.setAttribute("href", safe);
            }
        } else {
            el.setAttribute(k, v === true ? "" : String(v));
        }
    }
}

export function append(el, kids) {
    for (const k of [kids].flat(Infinity)) {
        if (k == null || k === false) {
            continue;
        }
        el.appendChild(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return el;
}

export function clear(el) {
    while (el.firstChild) {
        el.removeChild(el.firstChild);
    }
    return el;
}

export function replace(el, ...kids) {
    clear(el);
    return append(el, kids);
}

// Only http(s) links and the dashboard's own hash routes are ever put in an href.
export function safeUrl(u) {
    if (typeof u !== "string") {
        return null;
    }
    if (u.startsWith("#/")) {
        return u;
    }
    try {
        const url = new URL(u);
        return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch {
        return null;
    }
}
