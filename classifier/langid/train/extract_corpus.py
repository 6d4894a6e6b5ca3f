#!/usr/bin/python3
"""Extracts the language-identification training text from installed Debian packages.

Usage: extract_corpus.py OUTDIR LANG...

For each language it writes OUTDIR/<lang>.train.txt and OUTDIR/<lang>.dev.txt (one text per
line; a line goes to dev when crc32 of it is 0 mod 10) and, where libexttextcat has the only
sizeable text statistics, OUTDIR/<lang>.fp.tsv ("ngram<TAB>relative frequency", ' ' marking a
word boundary). OUTDIR/sources.txt lists every file read with its line count. The sources are
the table SOURCES below; every file named there must exist (the error names the Debian package
to install), so two runs on systems with the same package versions give byte-identical output.
Nothing derived from these files is committed: they carry their own licences (GPL, LGPL, the
Unicode licence, BSD), see docs/language-id.md. Standard library only; run with /usr/bin/python3.
"""

import glob
import os
import re
import struct
import sys
import xml.etree.ElementTree as ET
import zlib

LOCALE = "/usr/share/locale"
CLDR = "/usr/share/unicode/cldr/common"
FORTUNES = "/usr/share/games/fortunes"
I18N = "/usr/share/i18n/locales"
TEXTCAT = "/usr/share/libexttextcat"

# gettext domains read for every language that has a catalog for them, with their package.
GETTEXT_DOMAINS = [
    ("coreutils", "coreutils"), ("tar", "tar"), ("bash", "bash"), ("libc", "libc-l10n"),
    ("dpkg", "dpkg"), ("apt", "apt"), ("libapt-pkg6.0", "libapt-pkg6.0"),
    ("gettext-tools", "gettext"), ("gettext-runtime", "gettext-base"),
    ("diffutils", "diffutils"), ("findutils", "findutils"), ("grep", "grep"), ("sed", "sed"),
    ("make", "make"), ("wget", "wget"), ("git", "git"), ("gnupg2", "gnupg-l10n"),
    ("shadow", "login"), ("procps-ng", "procps"), ("psmisc", "psmisc"), ("xz", "xz-utils"),
    ("glib20", "libglib2.0-data"), ("xkeyboard-config", "xkb-data"),
    ("shared-mime-info", "shared-mime-info"), ("man-db", "man-db"),
    ("Linux-PAM", "libpam-runtime"), ("adduser", "adduser"), ("iso_639-2", "iso-codes"),
    ("iso_3166-1", "iso-codes"), ("iso_4217", "iso-codes"), ("iso_15924", "iso-codes"),
    ("appstream", "appstream"), ("gsettings-desktop-schemas", "gsettings-desktop-schemas"),
]

# Per language: gettext locale directories (None: English, which is the msgid side of every
# catalog), CLDR locales, fortune files, glibc locale sources, libexttextcat fingerprint.
SOURCES = {
    "en": {"gettext": None, "cldr": ["en"],
           "fortunes": [("fortunes-min", "fortunes"), ("fortunes-min", "literature"),
                        ("fortunes-min", "riddles"), ("fortunes", "people"),
                        ("fortunes", "love"), ("fortunes", "food"), ("fortunes", "pets"),
                        ("fortunes", "sports"), ("fortunes", "kids"), ("fortunes", "wisdom"),
                        ("fortunes", "humorists"), ("fortunes", "men-women"),
                        ("fortunes", "news"), ("fortunes", "politics"),
                        ("fortunes", "education"), ("fortunes", "miscellaneous"),
                        ("fortunes", "platitudes"), ("fortunes", "songs-poems")]},
    "es": {"gettext": ["es"], "cldr": ["es"], "fortunes": [("fortunes-es", "es/*.fortunes")]},
    "pt": {"gettext": ["pt", "pt_BR"], "cldr": ["pt", "pt_PT"],
           "fortunes": [("fortunes-br", "brasil")]},
    "qu": {"cldr": ["qu"], "glibc": ["quz_PE"], "fingerprint": "quz.lm"},
    "ay": {"glibc": ["ayc_PE"], "fingerprint": "ay.lm"},
    "fr": {"gettext": ["fr"], "cldr": ["fr"]},
    "it": {"gettext": ["it"], "cldr": ["it"]},
    "de": {"gettext": ["de"], "cldr": ["de"]},
    "ca": {"gettext": ["ca"], "cldr": ["ca"]},
    "gl": {"gettext": ["gl"], "cldr": ["gl"]},
}

# libexttextcat fingerprints that carry counts, used to learn how frequent the n-gram of a
# given rank is (the Quechua and Aymara ones list n-grams by rank only).
RANK_REFERENCE = ["es.lm", "en.lm", "pt.lm", "fr.lm", "it.lm", "de.lm"]

CLDR_SKIP = {"identity", "characters", "delimiters", "layout", "numbers", "contextTransforms",
             "posix", "metadata", "rbnf", "listPatterns"}


class SourceMissing(Exception):
    pass


def need(path, package):
    if not os.path.exists(path):
        raise SourceMissing("missing %s: install the Debian package %s" % (path, package))
    return path


def read_mo(path):
    """Returns [(msgid, msgstr)] of a GNU .mo file; plural forms are split apart."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412de else ">"
    _, n, orig, trans = struct.unpack(order + "4I", data[4:20])
    pairs = []
    charset = "utf-8"
    for i in range(n):
        olen, ooff = struct.unpack(order + "2I", data[orig + 8 * i:orig + 8 * i + 8])
        tlen, toff = struct.unpack(order + "2I", data[trans + 8 * i:trans + 8 * i + 8])
        msgid = data[ooff:ooff + olen]
        msgstr = data[toff:toff + tlen]
        if olen == 0:
            m = re.search(rb"charset=([-\w]+)", msgstr)
            if m:
                charset = m.group(1).decode("ascii")
            continue
        pairs.append((msgid, msgstr))
    out = []
    for msgid, msgstr in pairs:
        if b"\x04" in msgid:
            msgid = msgid.split(b"\x04", 1)[1]  # drop the msgctxt
        ids = [x.decode(charset, "replace") for x in msgid.split(b"\0")]
        strs = [x.decode(charset, "replace") for x in msgstr.split(b"\0")]
        out.append((ids, strs))
    return out


PRINTF = re.compile(r"%(\d+\$)?[-+ #0']*(\d+|\*)?(\.(\d+|\*))?(hh|h|ll|l|L|q|j|z|t|I)?"
                    r"[diouxXeEfFgGaAcspnm%]")
MARKUP = re.compile(r"\$\{[^}]*\}|\{[^}]*\}|<[^>]*>|&[a-zA-Z]+;|\\[ntr]")
BAD_TOKEN = re.compile(r"[/\\=@$|<>]|^-|--|\w_\w|\w\.\w|\d")
LETTER = re.compile(r"[^\W\d_]")


def clean(s):
    """Drops what is not running text in a UI string: formats, markup, options, paths."""
    s = PRINTF.sub(" ", s)
    s = MARKUP.sub(" ", s)
    words = []
    for tok in s.split():
        if BAD_TOKEN.search(tok):
            continue
        words.append(tok.lstrip("_&").replace("&", ""))
    s = " ".join(words)
    if len(LETTER.findall(s)) < 2:
        return None
    return s


def gettext_texts(lang, dirs, log):
    texts = []
    for domain, package in GETTEXT_DOMAINS:
        # Every listed domain has a Spanish catalog: its presence proves the package is there.
        need(os.path.join(LOCALE, "es", "LC_MESSAGES", domain + ".mo"), package)
        for d in (dirs or ["es"]):
            path = os.path.join(LOCALE, d, "LC_MESSAGES", domain + ".mo")
            if not os.path.exists(path):
                continue
            n = 0
            for ids, strs in read_mo(path):
                if dirs is None:
                    cands = ids
                else:
                    cands = [s for s in strs if s.strip() and s not in ids]
                for c in cands:
                    c = clean(c)
                    if c:
                        texts.append(c)
                        n += 1
            log.append("%s gettext %s %d" % (lang, path, n))
    return texts


def cldr_texts(lang, locales, log):
    texts = []
    for loc in locales:
        # annotationsDerived (skin-tone and gender variants) only repeats the same few words.
        for sub in ("main", "annotations"):
            path = os.path.join(CLDR, sub, loc + ".xml")
            if sub == "main":
                need(path, "unicode-cldr-core")
            elif not os.path.exists(path):
                continue
            root = ET.parse(path).getroot()
            n = 0
            stack = [(root, False)]
            while stack:
                el, skip = stack.pop()
                skip = skip or el.tag in CLDR_SKIP
                if not skip and el.text and el.text.strip():
                    if sub == "main":
                        parts = [el.text]
                    else:
                        parts = el.text.split("|")
                    for p in parts:
                        c = clean(re.sub(r"'[^']*'", " ", p) if sub == "main" else p)
                        if c:
                            texts.append(c)
                            n += 1
                for child in reversed(list(el)):
                    stack.append((child, skip))
            log.append("%s cldr %s %d" % (lang, path, n))
    return texts


def fortune_texts(lang, specs, log):
    texts = []
    for package, pattern in specs:
        paths = sorted(p for p in glob.glob(os.path.join(FORTUNES, pattern))
                       if not p.endswith((".dat", ".u8")) and os.path.isfile(p))
        if not paths:
            raise SourceMissing("missing %s: install the Debian package %s"
                                % (os.path.join(FORTUNES, pattern), package))
        for path in paths:
            with open(path, encoding="utf-8", errors="replace") as f:
                body = f.read()
            n = 0
            for cookie in body.split("\n%\n"):
                lines = [ln.strip() for ln in cookie.splitlines()
                         if ln.strip() and not ln.strip().startswith("--")]
                text = " ".join(lines)
                # Long cookies are cut into sentences so dev samples look like posts.
                for sent in re.split(r"(?<=[.!?])\s+", text):
                    c = clean(sent)
                    if c:
                        texts.append(c)
                        n += 1
            log.append("%s fortunes %s %d" % (lang, path, n))
    return texts


def glibc_texts(lang, locales, log):
    texts = []
    keys = ("day", "mon", "lang_name", "country_name", "yesstr", "nostr")
    for loc in locales:
        path = need(os.path.join(I18N, loc), "locales")
        with open(path, encoding="utf-8", errors="replace") as f:
            body = f.read()
        n = 0
        current = None
        for line in body.splitlines():
            m = re.match(r"^(\w+)\s", line)
            if m:
                current = m.group(1)
            if current not in keys:
                continue
            for q in re.findall(r'"([^"]*)"', line):
                q = re.sub(r"<U([0-9A-Fa-f]{4,6})>", lambda u: chr(int(u.group(1), 16)), q)
                c = clean(q)
                if c:
                    texts.append(c)
                    n += 1
        log.append("%s glibc %s %d" % (lang, path, n))
    return texts


def read_lm(name):
    path = need(os.path.join(TEXTCAT, name), "libexttextcat-data")
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            gram = parts[0].strip() if len(parts) == 1 else parts[0]
            count = int(parts[1]) if len(parts) > 1 and parts[1].strip() else None
            out.append((gram, count))
    return out


def rank_curve():
    """Mean relative frequency of the n-gram at each rank (per order) over RANK_REFERENCE."""
    sums = {}
    for name in RANK_REFERENCE:
        lm = read_lm(name)
        letters = sum(c for g, c in lm if len(g) == 1 and g != "_" and LETTER.match(g))
        for rank, (g, c) in enumerate(lm):
            sums.setdefault(rank, []).append(c / letters)
    return [sum(v) / len(v) for _, v in sorted(sums.items())]


# The Quechua and Aymara fingerprints were built from UDHR texts in the older five-vowel
# spelling (Aymara also writes the uvular fricative "jh"); today's official alphabets, and
# most of what people post, use three vowels and "x". Each n-gram's frequency is shared
# between the old and the modern spelling. Applied to whole n-grams, in this order.
MODERN_SPELLING = {
    "ay": [("jh", "x"), ("e", "i"), ("o", "u")],
    "qu": [("e", "i"), ("o", "u")],
}


def respell(lang, gram):
    for old, new in MODERN_SPELLING.get(lang, []):
        gram = gram.replace(old, new)
    return gram


def fingerprint(lang, name, curve, log):
    """(ngram, relative frequency) for the letters-only n-grams of a rank-only fingerprint."""
    freq = {}
    for rank, (g, _) in enumerate(read_lm(name)):
        body = g.replace("_", "")
        if not body or not all(LETTER.match(ch) or ch == "'" for ch in body):
            continue
        if "_" in g.strip("_"):
            continue
        key = g.replace("_", " ")
        r = curve[min(rank, len(curve) - 1)]
        modern = respell(lang, key.lower())
        if modern != key.lower() and len(modern) <= 5:
            freq[modern] = freq.get(modern, 0.0) + r / 2
            r /= 2
        freq[key] = freq.get(key, 0.0) + r
    log.append("%s fingerprint %s %d" % (lang, os.path.join(TEXTCAT, name), len(freq)))
    return sorted(freq.items())


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: extract_corpus.py OUTDIR LANG...\n")
        return 2
    outdir, langs = argv[1], argv[2:]
    os.makedirs(outdir, exist_ok=True)
    log = []
    curve = None
    try:
        raw = {}
        for lang in langs:
            src = SOURCES.get(lang)
            if src is None:
                sys.stderr.write("extract_corpus: no sources for language %s\n" % lang)
                return 2
            texts = []
            if "gettext" in src:
                texts += gettext_texts(lang, src["gettext"], log)
            texts += cldr_texts(lang, src.get("cldr", []), log)
            texts += fortune_texts(lang, src.get("fortunes", []), log)
            texts += glibc_texts(lang, src.get("glibc", []), log)
            raw[lang] = texts
        # A text found under two languages (untranslated names such as "Moldova", Spanish
        # strings left in the Quechua CLDR data) teaches nothing about either: drop it.
        owners = {}
        for lang in langs:
            for t in raw[lang]:
                owners.setdefault(t.lower(), set()).add(lang)
        for lang in langs:
            src = SOURCES[lang]
            seen = set()
            train, dev = [], []
            for t in raw[lang]:
                key = t.lower()
                if key in seen or len(owners[key]) > 1:
                    continue
                seen.add(key)
                (dev if zlib.crc32(key.encode("utf-8")) % 10 == 0 else train).append(t)
            for suffix, lines in (("train", train), ("dev", dev)):
                with open(os.path.join(outdir, "%s.%s.txt" % (lang, suffix)), "w",
                          encoding="utf-8") as f:
                    for t in lines:
                        f.write(t + "\n")
            fp_path = os.path.join(outdir, lang + ".fp.tsv")
            if "fingerprint" in src:
                if curve is None:
                    curve = rank_curve()
                with open(fp_path, "w", encoding="utf-8") as f:
                    for g, r in fingerprint(lang, src["fingerprint"], curve, log):
                        f.write("%s\t%.9g\n" % (g, r))
            elif os.path.exists(fp_path):
                os.remove(fp_path)
            log.append("%s total train=%d dev=%d" % (lang, len(train), len(dev)))
    except SourceMissing as e:
        sys.stderr.write("extract_corpus: %s\n" % e)
        return 1
    with open(os.path.join(outdir, "sources.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(log) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
