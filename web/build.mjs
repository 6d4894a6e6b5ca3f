// Builds the dashboard into one folder of static files that escucha-api serves under /:
// index.html, assets/app.js (src/main.js bundled with uPlot by esbuild) and assets/app.css
// (src/style.css with uPlot's stylesheet). Nothing is fetched at run time from anywhere but the
// API itself.
//
// usage: node build.mjs --out DIR [--modules DIR]   (DIR of node_modules, default ./node_modules)
import { copyFile, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const out = path.resolve(opt("--out", path.join(here, "dist")));
const modules = path.resolve(opt("--modules", path.join(here, "node_modules")));

const require = createRequire(path.join(modules, "noop.js"));
const esbuild = require("esbuild");

await mkdir(path.join(out, "assets"), { recursive: true });
await esbuild.build({
    entryPoints: { app: path.join(here, "src", "main.js") },
    bundle: true,
    format: "iife",
    target: ["es2020"],
    minify: true,
    sourcemap: false,
    legalComments: "none",
    outdir: path.join(out, "assets"),
    nodePaths: [modules],
    logLevel: "warning",
});
await copyFile(path.join(here, "src", "index.html"), path.join(out, "index.html"));
await copyFile(path.join(here, "src", "favicon.svg"), path.join(out, "favicon.svg"));
console.log("dashboard built in " + out);
