// Validates Kubernetes objects against the API's JSON schemas, as compiled by the npm package
// kubernetes-models (types, required fields, enums, formats; like kubeconform without -strict:
// the API schemas do not forbid unknown fields, test_k8s.py checks those it cares about).
// Reads a JSON array of objects on stdin; prints one line per invalid object; exit 1 if any.
// usage: node k8s_validate.cjs NODE_MODULES_DIR < objects.json
"use strict";
const fs = require("fs");
const path = require("path");
const { createRequire } = require("module");

const modules = process.argv[2];
const req = createRequire(path.join(path.dirname(path.resolve(modules)), "index.js"));
const objects = JSON.parse(fs.readFileSync(0, "utf8"));
let bad = 0;
for (const obj of objects) {
    const group = obj.apiVersion === "v1" ? "v1" : obj.apiVersion;
    const where = `${obj.kind}/${obj.metadata && obj.metadata.name}`;
    let Model;
    try {
        Model = req(`kubernetes-models/${group}`)[obj.kind];
    } catch (e) {
        Model = undefined;
    }
    if (Model === undefined) {
        console.log(`${where}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
        bad++;
        continue;
    }
    try {
        new Model(obj).validate();
        console.log(`${where}: valid ${obj.apiVersion}`);
    } catch (e) {
        console.log(`${where}: ${e.message}`);
        bad++;
    }
}
process.exit(bad === 0 ? 0 : 1);
