"""Seeds that take each box `inspect`'s decoders read into their error paths, which random
mutation otherwise finds one at a time. For every leaf box type in the given files (taken from
the smallest file that has it): copies of that file with the box cut short after each of its
first 48 payload bytes (and at 16 points beyond), with 8 bytes too many, with its version byte
raised to 1, 2 and 255, and with every flag set. For every box that holds boxes (containers,
`stsd`, `dref` and the sample entries): copies with each child left out, each child twice, an
unknown child first and last, a child header cut after each of its bytes at the end, a last
child longer than what is left, the first child with a 64-bit size, and the fixed part before
the children cut after each byte. The sizes of the box and of the boxes around it are made to
agree, so the box itself is wrong, not the file. Usage: python3 seed-box-cuts.py OUT_DIR FILE..."""

import hashlib
import os
import struct
import sys

# Boxes that hold only boxes.
CONTAINERS = {
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts", b"mvex", b"moof", b"traf",
    b"mfra", b"udta", b"sinf", b"schi", b"tref",
}
# Boxes with a fixed part before their child boxes: how many bytes.
FIXED = {
    b"stsd": 8, b"dref": 8,
    # Visual sample entries.
    b"avc1": 78, b"avc3": 78, b"hvc1": 78, b"hev1": 78, b"vp08": 78, b"vp09": 78, b"av01": 78,
    b"mp4v": 78, b"encv": 78,
    # Audio sample entries.
    b"Opus": 28, b"mp4a": 28, b"fLaC": 28, b"alac": 28, b".mp3": 28, b"enca": 28, b"ipcm": 28,
    b"ac-3": 28, b"ec-3": 28,
}
CUT_EVERY_BYTE_UP_TO = 48
CUT_POINTS_BEYOND = 16


def parse(data):
    """The boxes in `data`, as [kind, fixed, children or None, payload]."""
    nodes, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        header = 8
        if size == 1 and at + 16 <= len(data):
            size, header = struct.unpack(">Q", data[at + 8 : at + 16])[0], 16
        elif size == 0:
            size = len(data) - at
        if size < header or at + size > len(data):
            break
        payload = data[at + header : at + size]
        fixed = 0 if kind in CONTAINERS else FIXED.get(kind)
        if fixed is not None and len(payload) >= fixed:
            nodes.append([kind, payload[:fixed], parse(payload[fixed:]), payload])
        else:
            nodes.append([kind, b"", None, payload])
        at += size
    return nodes


def serialize(nodes, target=None, payload_of_target=None):
    """The bytes of `nodes`, the node `target` (by identity) carrying `payload_of_target`."""
    out = []
    for node in nodes:
        kind, fixed, children, payload = node
        if node is target:
            payload = payload_of_target
        elif children is not None:
            payload = fixed + serialize(children, target, payload_of_target)
        out.append(struct.pack(">I4s", 8 + len(payload), kind) + payload)
    return b"".join(out)


def leaves(nodes):
    for node in nodes:
        if node[2] is None:
            if node[0] != b"mdat":
                yield node
        else:
            yield from leaves(node[2])


def parents(nodes):
    for node in nodes:
        if node[2] is not None:
            yield node
            yield from parents(node[2])


def leaf_variants(node):
    payload = node[3]
    n = len(payload)
    cuts = set(range(min(n, CUT_EVERY_BYTE_UP_TO)))
    if n > CUT_EVERY_BYTE_UP_TO:
        step = max(1, (n - CUT_EVERY_BYTE_UP_TO) // CUT_POINTS_BEYOND)
        cuts.update(range(CUT_EVERY_BYTE_UP_TO, n, step))
    for cut in sorted(cuts):
        yield payload[:cut]
    yield payload + bytes(8)
    if n >= 4:
        for version in (1, 2, 255):
            yield bytes([version]) + payload[1:]
        yield payload[:1] + b"\xff\xff\xff" + payload[4:]


def parent_variants(node):
    _, fixed, children, _ = node
    body = serialize(children)
    for i in range(len(children)):
        yield fixed + serialize(children[:i] + children[i + 1 :])
        yield fixed + serialize(children[: i + 1] + children[i:])
    unknown = struct.pack(">I4s", 12, b"zzzz") + bytes(4)
    yield fixed + unknown + body
    yield fixed + body + unknown
    header = struct.pack(">I4s", 16, b"free")
    for cut in range(1, len(header)):
        yield fixed + body + header[:cut]
    yield fixed + body + header + bytes(4)
    if children:
        first = serialize(children[:1])
        large = struct.pack(">I4sQ", 1, first[4:8], len(first) + 8) + first[8:]
        yield fixed + large + body[len(first) :]
    for cut in range(len(fixed)):
        yield fixed[:cut]


def main():
    out_dir, files = sys.argv[1], sys.argv[2:]
    os.makedirs(out_dir, exist_ok=True)
    written = 0
    for kinds_of, variants_of in ((leaves, leaf_variants), (parents, parent_variants)):
        # The smallest file that has each box type.
        smallest = {}
        for path in sorted(files, key=os.path.getsize):
            for node in kinds_of(parse(open(path, "rb").read())):
                smallest.setdefault(node[0], path)
        for kind, path in sorted(smallest.items()):
            tree = parse(open(path, "rb").read())
            node = next(n for n in kinds_of(tree) if n[0] == kind)
            for payload in variants_of(node):
                seed = serialize(tree, node, payload)
                with open(os.path.join(out_dir, hashlib.sha1(seed).hexdigest()), "wb") as f:
                    f.write(seed)
                written += 1
        print(f"{kinds_of.__name__}: {len(smallest)} box types", file=sys.stderr)
    print(f"{written} seeds", file=sys.stderr)


main()
