// The dashboard's only way out: fetch() to escucha-api on the same origin, with the token as a
// bearer header (never in a URL). The live stream is read with fetch too (EventSource cannot
// send headers), parsing text/event-stream by hand.

const KEY = "escucha.token";

export class ApiError extends Error {
    constructor(status, body) {
        const e = (body && body.error) || {};
        super(e.message || "HTTP " + status);
        this.status = status;
        this.code = e.code || "http_" + status;
        this.details = e.details || [];
    }
}

export function token() {
    return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
}

export function setToken(t, remember) {
    sessionStorage.setItem(KEY, t);
    if (remember) {
        localStorage.setItem(KEY, t);
    } else {
        localStorage.removeItem(KEY);
    }
}

export function clearToken() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
    onUnauthorized = fn;
}

function headers(extra) {
    return Object.assign({ Authorization: "Bearer " + token() }, extra || {});
}

export async function api(path, opts = {}) {
    const init = { method: opts.method || "GET", headers: headers(), signal: opts.signal };
    if (opts.body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(opts.body);
    }
    const r = await fetch("/api/v1" + path, init);
    let body = null;
    const type = r.headers.get("Content-Type") || "";
    if (type.includes("json")) {
        body = await r.json();
    } else {
        body = await r.text();
    }
    if (r.status === 401) {
        onUnauthorized();
    }
    if (!r.ok) {
        throw new ApiError(r.status, body);
    }
    return body;
}

// Downloads an authenticated file (the CSV export) through a temporary object URL.
export async function download(path, filename) {
    const r = await fetch("/api/v1" + path, { headers: headers() });
    if (!r.ok) {
        throw new ApiError(r.status, null);
    }
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// Reads a server-sent-event stream; calls onEvent({event, id, data}) for each event and
// onState("open" | "closed" | "error") as the connection changes. Reconnects after 3 s with
// Last-Event-ID until the signal aborts. Returns nothing; abort the controller to stop.
export function stream(path, onEvent, onState, signal) {
    let lastId = null;
    const run = async () => {
        while (!signal.aborted) {
            try {
                const h = headers({ Accept: "text/event-stream" });
                if (lastId) {
                    h["Last-Event-ID"] = lastId;
                }
                const r = await fetch("/api/v1" + path, { headers: h, signal });
                if (!r.ok || !r.body) {
                    onState("error");
                    if (r.status === 401 || r.status === 404) {
                        return;
                    }
                } else {
                    onState("open");
                    const reader = r.body.getReader();
                    const dec = new TextDecoder();
                    let buf = "";
                    let ev = { event: "message", data: [] };
                    for (;;) {
                        const { value, done } = await reader.read();
                        if (done) {
                            break;
                        }
                        buf += dec.decode(value, { stream: true });
                        let nl;
                        while ((nl = buf.indexOf("\n")) >= 0) {
                            const line = buf.slice(0, nl).replace(/\r$/, "");
                            buf = buf.slice(nl + 1);
                            if (line === "") {
                                if (ev.data.length) {
                                    if (ev.id) {
                                        lastId = ev.id;
                                    }
                                    onEvent({ event: ev.event, id: ev.id, data: ev.data.join("\n") });
                                }
                                ev = { event: "message", data: [] };
                            } else if (!line.startsWith(":")) {
                                const i = line.indexOf(":");
                                const field = i < 0 ? line : line.slice(0, i);
                                const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
                                if (field === "data") {
                                    ev.data.push(val);
                                } else if (field === "event") {
                                    ev.event = val;
                                } else if (field === "id") {
                                    ev.id = val;
                                }
                            }
                        }
                    }
                    onState("closed");
                }
            } catch (e) {
                if (signal.aborted) {
                    return;
                }
                onState("error");
            }
            await new Promise((res) => setTimeout(res, 3000));
        }
    };
    run();
}
