// Charts: uPlot for time series (volume with spike bands, reach/engagement, compare) and a
// hand-made SVG sparkline for the overview cards.
import uPlot from "uplot";
import { svg } from "./dom.js";
import { axisTime, compact, dateTime, timeZone } from "./format.js";

export const PALETTE = ["#0f766e", "#7c3aed", "#ea580c", "#2563eb", "#db2777", "#65a30d",
    "#0891b2", "#ca8a04", "#dc2626", "#475569"];

export function sparkline(values, opts = {}) {
    const w = opts.width || 240;
    const hgt = opts.height || 48;
    const n = values.length;
    const max = Math.max(1, ...values);
    const x = (i) => (n <= 1 ? 0 : (i / (n - 1)) * w);
    const y = (v) => hgt - 2 - (v / max) * (hgt - 6);
    let d = "";
    values.forEach((v, i) => {
        d += (i ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
    });
    const area = d + "L" + w + " " + hgt + "L0 " + hgt + "Z";
    const color = opts.color || PALETTE[0];
    return svg("svg", { viewBox: "0 0 " + w + " " + hgt, class: "spark", preserveAspectRatio: "none",
        role: "img", "aria-label": opts.label || "" },
    svg("path", { d: area, fill: color, "fill-opacity": "0.12", stroke: "none" }),
    svg("path", { d, fill: "none", stroke: color, "stroke-width": "1.6", "vector-effect": "non-scaling-stroke" }));
}

// Shades [from, to) windows (Unix seconds) behind the series: the spikes.
function bandsPlugin(bands, color) {
    return {
        hooks: {
            drawClear: [
                (u) => {
                    const { ctx } = u;
                    const top = u.bbox.top;
                    const hgt = u.bbox.height;
                    ctx.save();
                    ctx.fillStyle = color;
                    for (const b of bands) {
                        const x0 = Math.max(u.bbox.left, u.valToPos(b.from, "x", true));
                        const x1 = Math.min(u.bbox.left + u.bbox.width, u.valToPos(b.to, "x", true));
                        if (x1 > x0) {
                            ctx.fillRect(x0, top, Math.max(2, x1 - x0), hgt);
                        }
                    }
                    ctx.restore();
                },
            ],
        },
    };
}

const charts = new Set();
let resizeBound = false;

function track(u, el) {
    charts.add({ u, el });
    if (!resizeBound) {
        resizeBound = true;
        window.addEventListener("resize", () => {
            for (const c of charts) {
                if (!document.body.contains(c.el)) {
                    c.u.destroy();
                    charts.delete(c);
                } else {
                    c.u.setSize({ width: c.el.clientWidth, height: c.u.height });
                }
            }
        });
    }
    return u;
}

// series: [{label, values, color, fill, scale}]; bands: [{from, to}]
export function timeChart(el, t, series, opts = {}) {
    const scales = { x: { time: true } };
    const axes = [
        { stroke: "#64748b", grid: { stroke: "#eef2f7" }, ticks: { stroke: "#e2e8f0" },
            values: (u, splits, ax, space, incr) => splits.map((v) => axisTime(v, incr)) },
        { stroke: "#64748b", grid: { stroke: "#eef2f7" }, ticks: { show: false }, size: 52,
            values: (u, vals) => vals.map((v) => compact(v)) },
    ];
    const useRight = series.some((s) => s.scale === "right");
    if (useRight) {
        scales.right = { auto: true };
        axes.push({ scale: "right", side: 1, stroke: "#64748b", grid: { show: false }, size: 52,
            values: (u, vals) => vals.map((v) => compact(v)) });
    }
    const u = new uPlot({
        width: Math.max(300, el.clientWidth || 600),
        height: opts.height || 240,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), timeZone()),
        scales,
        axes,
        legend: { show: opts.legend !== false },
        cursor: { drag: { x: false, y: false } },
        plugins: opts.bands && opts.bands.length ? [bandsPlugin(opts.bands, "rgba(234, 88, 12, 0.16)")] : [],
        series: [
            { label: opts.timeLabel || "", value: (u2, v) => (v == null ? "–" : dateTime(v)) },
            ...series.map((s, i) => ({
                label: s.label,
                scale: s.scale === "right" ? "right" : "y",
                stroke: s.color || PALETTE[i % PALETTE.length],
                width: 2,
                fill: s.fill ? (s.color || PALETTE[i % PALETTE.length]) + "22" : undefined,
                points: { show: false },
                value: (u2, v) => (v == null ? "–" : compact(v)),
            })),
        ],
    }, [t, ...series.map((s) => s.values)], el);
    return track(u, el);
}
