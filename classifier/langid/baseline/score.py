#!/usr/bin/python3
"""Reads "truth<TAB>length<TAB>answer<TAB>variant" lines on stdin and prints, per variant, the
accuracy table of escucha-langid-eval (per language and length; "und" counts as wrong)."""

import sys

BUCKETS = ["1w", "2w", "3-5w", "sent"]
LANGS = sys.argv[1].split(",") if len(sys.argv) > 1 else ["es", "en", "pt", "qu", "ay"]

cells = {}
for line in sys.stdin:
    truth, bucket, answer, variant = line.rstrip("\n").split("\t")
    c = cells.setdefault(variant, {}).setdefault((truth, bucket), [0, 0, 0])
    c[0] += 1
    c[1] += answer == truth
    c[2] += answer == "und"

for variant, v in cells.items():
    print("%s\n\n| lang | %s | all | und | n |" % (variant, " | ".join(BUCKETS)))
    print("|---|" + "---|" * (len(BUCKETS) + 3))
    rows = LANGS + ["all"]
    for lang in rows:
        out, tot = [], [0, 0, 0]
        for b in BUCKETS:
            keys = [(lang, b)] if lang != "all" else [(x, b) for x in LANGS]
            n = sum(v.get(k, [0, 0, 0])[0] for k in keys)
            ok = sum(v.get(k, [0, 0, 0])[1] for k in keys)
            und = sum(v.get(k, [0, 0, 0])[2] for k in keys)
            tot = [tot[0] + n, tot[1] + ok, tot[2] + und]
            out.append("%.1f" % (100.0 * ok / n) if n else "-")
        if tot[0] == 0:
            continue
        print("| %s | %s | %.1f | %.1f | %d |" % (lang, " | ".join(out), 100.0 * tot[1] / tot[0],
                                                 100.0 * tot[2] / tot[0], tot[0]))
    print()
