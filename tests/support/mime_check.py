#!/usr/bin/python3
"""Parses an e-mail file with Python's email package and prints what escucha's tests check.

Usage: mime_check.py MESSAGE.eml  (run with Debian's /usr/bin/python3; stdlib only)

Prints one JSON object: the header names in order, the decoded Subject and To, the tree of
content types, the decoded text/plain and text/html parts (line ends as \n), every inline image (Content-ID,
PNG signature and size from its IHDR chunk), the cid: references of the HTML, and "defects":
what the parser found wrong (must be empty). Exit status 0 when the file parsed at all.
"""

import email
import email.policy
import json
import re
import struct
import sys


def tree(part):
    node = {"type": part.get_content_type()}
    if part.is_multipart():
        node["parts"] = [tree(p) for p in part.iter_parts()]
    return node


def png_info(data):
    ok = data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24]) if ok else (0, 0)
    return ok, w, h


def main():
    with open(sys.argv[1], "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = {
        "headers": [k for k, _ in msg.raw_items()],
        "subject": str(msg["Subject"] or ""),
        "to": str(msg["To"] or ""),
        "from": str(msg["From"] or ""),
        "tree": tree(msg),
        "text": None,
        "html": None,
        "images": [],
        "html_cids": [],
        "defects": [],
    }
    for part in msg.walk():
        for d in part.defects:
            out["defects"].append(type(d).__name__)
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and out["text"] is None:
            out["text"] = part.get_content().replace("\r\n", "\n")
            out["text_cte"] = str(part.get("Content-Transfer-Encoding", ""))
        elif ctype == "text/html" and out["html"] is None:
            out["html"] = part.get_content().replace("\r\n", "\n")
            out["html_cte"] = str(part.get("Content-Transfer-Encoding", ""))
        elif ctype.startswith("image/"):
            data = part.get_payload(decode=True) or b""
            ok, w, h = png_info(data)
            cid = str(part.get("Content-ID", "")).strip()
            out["images"].append({"type": ctype, "cid": cid.strip("<>"), "png": ok,
                                  "width": w, "height": h, "bytes": len(data),
                                  "disposition": part.get_content_disposition() or ""})
    if out["html"] is not None:
        out["html_cids"] = re.findall(r'src="cid:([^"]+)"', out["html"])
    json.dump(out, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
