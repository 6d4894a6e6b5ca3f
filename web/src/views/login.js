import { api, setToken, clearToken } from "../api.js";
import { h } from "../dom.js";
import { t } from "../i18n.js";

export function loginView(root, done) {
    const input = h("input", { type: "password", id: "token", autocomplete: "off", spellcheck: "false",
        placeholder: "••••••••", required: true });
    const remember = h("input", { type: "checkbox", id: "remember" });
    const msg = h("p", { class: "error-text", role: "alert" });
    const form = h("form", { class: "login card", onsubmit: async (e) => {
        e.preventDefault();
        msg.textContent = "";
        setToken(input.value.trim(), remember.checked);
        try {
            const me = await api("/me");
            done(me);
        } catch {
            clearToken();
            msg.textContent = t("bad_token");
        }
    } },
    h("div", { class: "brand big" }, h("span", { class: "logo" }), "escucha"),
    h("h2", null, t("login_title")),
    h("p", { class: "muted" }, t("login_help")),
    h("label", { for: "token" }, t("token")), input,
    h("label", { class: "check" }, remember, t("remember")),
    h("button", { type: "submit", class: "primary" }, t("enter")),
    msg);
    root.appendChild(h("div", { class: "login-wrap" }, form));
    input.focus();
}
