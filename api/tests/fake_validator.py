#!/usr/bin/python3
"""A stand-in for `escucha-classifier --check-query Q` with the same contract (docs/api.md,
"Query validation contract"): messages on stdout as `error: column N: text` (then a caret
line), exit 0 when the query is valid, 2 when it has errors. Its rules are tiny on purpose:
unbalanced parentheses, an operator with nothing after it, and `__hang__` (sleeps, for the
timeout test). Used by the API tests when the real classifier is not built."""

import sys
import time


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "--check-query":
        print("usage: fake_validator.py --check-query Q", file=sys.stderr)
        return 1
    q = sys.argv[2]
    if "__hang__" in q:
        time.sleep(30)
    errors = []
    depth = 0
    for i, ch in enumerate(q):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                errors.append((i + 1, "')' without a matching '('"))
                depth = 0
    if depth > 0:
        errors.append((q.rfind("(") + 1, "'(' is never closed"))
    words = q.split()
    if words and words[-1] in ("AND", "OR", "NOT"):
        errors.append((q.rstrip().rfind(words[-1]) + 1, "expected a term after %s" % words[-1]))
    for col, text in errors:
        print("error: column %d: %s" % (col, text))
        print("  " + q)
        print("  " + " " * (col - 1) + "^")
    if not errors:
        if "  " in q:
            print("warning: column %d: repeated spaces" % (q.find("  ") + 1))
        print("query ok")
    return 2 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
