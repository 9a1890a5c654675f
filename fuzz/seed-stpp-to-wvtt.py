"""Rewrites an MP4 whose subtitle track has a TTML (`stpp`) sample entry into one with a WebVTT
(`wvtt` + `vttC`) entry, for the `inspect` fuzz seeds (ffmpeg does not write WebVTT into MP4).
Usage: python3 seed-stpp-to-wvtt.py IN.mp4 OUT.mp4. Only the moov changes size, so the file's
moov must follow its mdat (ffmpeg's default)."""

import struct
import sys

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def boxes(data):
    at = 0
    while at < len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        yield kind, data[at + 8 : at + size]
        at += size


def box(kind, payload):
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def rewrite(kind, payload):
    if kind in CONTAINERS:
        return box(kind, b"".join(rewrite(k, p) for k, p in boxes(payload)))
    if kind == b"stsd":
        # version, flags and entry count, then the entries.
        entries = []
        for k, p in boxes(payload[8:]):
            if k == b"stpp":
                # six reserved bytes, data_reference_index 1, the WebVTT header.
                k, p = b"wvtt", bytes(6) + struct.pack(">H", 1) + box(b"vttC", b"WEBVTT\n")
            entries.append(box(k, p))
        return box(kind, payload[:8] + b"".join(entries))
    return box(kind, payload)


data = open(sys.argv[1], "rb").read()
order = [kind for kind, _ in boxes(data)]
if b"mdat" not in order or order.index(b"mdat") > order.index(b"moov"):
    sys.exit(f"{sys.argv[1]}: the moov must follow the mdat, or chunk offsets would move")
with open(sys.argv[2], "wb") as out:
    out.write(b"".join(rewrite(k, p) if k == b"moov" else box(k, p) for k, p in boxes(data)))
