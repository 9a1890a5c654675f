"""Writes small fragmented MP4s whose key frames carry hand-made H.264 SPSs in band (avc3), for
the `inspect` fuzz seeds: the SPS shapes no encoder on the machine writes (4:4:4 with separate
colour planes, 4:2:2 and monochrome cropping, pic_order_cnt_type 1, field coding with cropping,
twelve scaling lists, every High profile_idc) and SPSs broken in each field `parse_sps` checks
(out-of-range values, and one SPS cut after each of its bytes). Each file has two key frames: the
made SPS, then a plain one, so a resolution change follows when the first parses.
Usage: python3 seed-sps-variants.py OUT_DIR"""

import os
import struct
import sys


class Bits:
    """An H.264 RBSP bit writer: fixed-width fields and Exp-Golomb codes."""

    def __init__(self):
        self.bits = []

    def u(self, width, value):
        self.bits += [(value >> (width - 1 - i)) & 1 for i in range(width)]

    def ue(self, value):
        value += 1
        self.u(value.bit_length() - 1, 0)
        self.u(value.bit_length(), value)

    def se(self, value):
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self):
        bits = self.bits + [1]  # rbsp_stop_one_bit, then zeros to the byte boundary
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


def escape(rbsp):
    """Inserts emulation-prevention bytes: 00 00 0x (x ≤ 3) becomes 00 00 03 0x."""
    out, zeros = bytearray(), 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


HIGH_PROFILES = (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135)


def sps(
    profile=100,
    chroma=1,
    separate=0,
    depth=(0, 0),
    scaling=None,
    poc_type=0,
    poc_cycle=(),
    mbs=(4, 3),
    frame_mbs_only=1,
    crop=None,
):
    """An SPS NAL unit (header byte included) with the given fields; the rest are plain."""
    b = Bits()
    b.u(8, profile)
    b.u(8, 0)  # constraint flags
    b.u(8, 30)  # level 3.0
    b.ue(0)  # seq_parameter_set_id
    if profile in HIGH_PROFILES:
        b.ue(chroma)
        if chroma == 3:
            b.u(1, separate)
        b.ue(depth[0])
        b.ue(depth[1])
        b.u(1, 0)  # qpprime_y_zero_transform_bypass_flag
        b.u(1, scaling is not None)
        for deltas in scaling or ():
            b.u(1, deltas is not None)
            for d in deltas or ():
                b.se(d)
    b.ue(0)  # log2_max_frame_num_minus4
    b.ue(poc_type)
    if poc_type == 0:
        b.ue(2)
    elif poc_type == 1:
        b.u(1, 0)
        b.se(-1)  # offset_for_non_ref_pic
        b.se(1)  # offset_for_top_to_bottom_field
        b.ue(len(poc_cycle))
        for offset in poc_cycle:
            b.se(offset)
    b.ue(1)  # max_num_ref_frames
    b.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    b.ue(mbs[0] - 1)
    b.ue(mbs[1] - 1)
    b.u(1, frame_mbs_only)
    if not frame_mbs_only:
        b.u(1, 1)  # mb_adaptive_frame_field_flag
    b.u(1, 1)  # direct_8x8_inference_flag
    b.u(1, crop is not None)
    for offset in crop or ():
        b.ue(offset)
    b.u(1, 0)  # vui_parameters_present_flag
    return b"\x67" + escape(b.rbsp())


# A scaling list of 16 or 64 deltas; one that reaches 0 early means "use the default list".
FLAT = [0] * 16
TO_DEFAULT = [-8]
RAMP = [1, -1, 2, -2] * 16


def box(kind, *payload):
    data = b"".join(payload)
    return struct.pack(">I4s", 8 + len(data), kind) + data


def full_box(kind, version, flags, *payload):
    return box(kind, struct.pack(">I", version << 24 | flags), *payload)


PLAIN_SPS = sps(profile=66)
PPS = b"\x68\xce\x38\x80"
MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def fragmented_mp4(first_sps):
    """ftyp + moov (one avc3 video track) + one fragment of two key frames."""
    width, height = 64, 48
    avcc = box(
        b"avcC",
        bytes([1, PLAIN_SPS[1], PLAIN_SPS[2], PLAIN_SPS[3], 0xFF, 0xE1]),
        struct.pack(">H", len(PLAIN_SPS)),
        PLAIN_SPS,
        b"\x01",
        struct.pack(">H", len(PPS)),
        PPS,
    )
    entry = box(
        b"avc3",
        bytes(6),
        struct.pack(">HHH12xHHIIIH32xHh", 1, 0, 0, width, height, 0x480000, 0x480000, 0, 1, 0x18, -1),
        avcc,
    )
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full_box(b"stts", 0, 0, bytes(4)),
        full_box(b"stsc", 0, 0, bytes(4)),
        full_box(b"stsz", 0, 0, bytes(8)),
        full_box(b"stco", 0, 0, bytes(4)),
    )
    minf = box(
        b"minf",
        full_box(b"vmhd", 0, 1, bytes(8)),
        box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1))),
        stbl,
    )
    mdia = box(
        b"mdia",
        full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, 90000, 0, 0x55C4, 0)),
        full_box(b"hdlr", 0, 0, bytes(4), b"vide", bytes(12), b"VideoHandler\0"),
        minf,
    )
    tkhd = full_box(
        b"tkhd", 0, 3, struct.pack(">IIIII8xHHHH", 0, 0, 1, 0, 0, 0, 0, 0, 0), MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    moov = box(
        b"moov",
        full_box(b"mvhd", 0, 0, struct.pack(">IIIIIH10x", 0, 0, 1000, 0, 0x10000, 0x100), MATRIX,
                 bytes(24), struct.pack(">I", 2)),
        box(b"trak", tkhd, mdia),
        box(b"mvex", full_box(b"trex", 0, 0, struct.pack(">IIIII", 1, 1, 0, 0, 0))),
    )

    def length_prefixed(*nals):
        return b"".join(struct.pack(">I", len(n)) + n for n in nals)

    idr = b"\x65\x88\x84\x00\x33\xff"
    samples = [length_prefixed(first_sps, PPS, idr), length_prefixed(PLAIN_SPS, PPS, idr)]
    sync = 0x02000000

    def moof(data_offset):
        trun = full_box(
            b"trun", 0, 0x701, struct.pack(">Ii", len(samples), data_offset),
            *(struct.pack(">III", 9000, len(s), sync) for s in samples),
        )
        traf = box(
            b"traf",
            full_box(b"tfhd", 0, 0x020000, struct.pack(">I", 1)),
            full_box(b"tfdt", 1, 0, struct.pack(">Q", 0)),
            trun,
        )
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", 1)), traf)

    header = moof(0)
    fragment = moof(len(header) + 8) + box(b"mdat", *samples)
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6avc1mp41")
    return ftyp + moov + fragment


RICH = dict(
    profile=244, chroma=3, separate=1, depth=(2, 2), scaling=[FLAT] * 6 + [RAMP] * 6,
    poc_type=1, poc_cycle=(1, -2, 3), frame_mbs_only=0, mbs=(5, 2), crop=(1, 2, 1, 0),
)
VARIANTS = {
    "high444-separate-planes-cropped": RICH,
    "high444-scaling-to-default": dict(profile=244, chroma=3, scaling=[TO_DEFAULT] * 12),
    "high444-cropped": dict(profile=244, chroma=3, crop=(3, 1, 2, 2)),
    "high422-cropped": dict(profile=122, chroma=2, depth=(2, 2), crop=(2, 2, 1, 1)),
    "monochrome-cropped": dict(profile=100, chroma=0, crop=(4, 4, 4, 4)),
    "high-scaling-some-lists": dict(scaling=[None, FLAT, None, TO_DEFAULT, None, FLAT, RAMP, None]),
    "poc-type-1": dict(poc_type=1, poc_cycle=(2, -1, 0, 5)),
    "poc-type-2-fields-cropped": dict(poc_type=2, frame_mbs_only=0, crop=(0, 0, 1, 2)),
    "wide-escaped": dict(mbs=(1 << 20, 1 << 20), crop=(0, 0, 0, 0)),
    # Out of range, each in one field parse_sps checks.
    "bad-chroma-format": dict(chroma=4),
    "bad-bit-depth": dict(depth=(7, 0)),
    "bad-poc-type": dict(poc_type=3),
    "bad-poc-cycle": dict(poc_type=1, poc_cycle=(0,) * 256),
    "bad-crop-wide": dict(crop=(40, 40, 0, 0)),
    "bad-crop-tall": dict(crop=(0, 0, 30, 30)),
    "bad-width": dict(mbs=(1 << 28, 1)),
}
VARIANTS.update({f"profile-{p}": dict(profile=p, chroma=1 + p % 3) for p in HIGH_PROFILES})

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
made = {f"sps-{name}.mp4": sps(**fields) for name, fields in VARIANTS.items()}
# A rich SPS (short scaling lists) cut after each of its bytes: each cut ends it in another field.
rich = sps(**dict(RICH, scaling=[TO_DEFAULT] * 12))
made.update({f"sps-cut-{n:02}.mp4": rich[:n] for n in range(1, len(rich))})
made["sps-too-many-zeros.mp4"] = b"\x67\x64\x00\x1e" + bytes(5) + b"\x01"
for name, nal in made.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(fragmented_mp4(nal))
print(f"{len(made)} SPS seeds")
