#!/usr/bin/env bash
# Seeds for the `inspect` fuzz target: small MP4/fMP4/MOV files as real muxers write them, with
# the H.264 profiles and SPS features (scaling matrices, interlacing, cropping, VUI, HRD), sample
# entries (avc1/avc3, hvc1, vp09, av01, Opus, AAC, FLAC, ALAC, MP3, and the 3GPP timed-text,
# TTML and WebVTT subtitle entries shiguredo_mp4 decodes in every stsd) and movflags (fragments,
# mfra, sidx, edit lists, negative composition offsets, metadata) that random mutation reaches
# only slowly. The fuzzer keeps those that add coverage when its corpus is merged
# (docs/benchmarks.md). Usage: bash fuzz/make-inspect-seeds.sh OUT_DIR (needs Debian's ffmpeg).
set -euo pipefail
out=${1:?usage: make-inspect-seeds.sh OUT_DIR}
mkdir -p "$out"

video="-f lavfi -i testsrc2=size=64x48:rate=10:duration=0.6"
audio="-f lavfi -i sine=frequency=440:sample_rate=48000:duration=0.6"
fragmented="-movflags frag_keyframe+empty_moov+default_base_moof"
x264="-c:v libx264 -preset ultrafast -g 3"

# seed NAME FFMPEG-ARGS…: writes OUT_DIR/NAME; a variant this ffmpeg cannot make is skipped.
seed() {
  local name=$1
  shift
  if ! ffmpeg -nostdin -hide_banner -loglevel error -y "$@" "$out/$name" 2>/dev/null; then
    echo "skipped $name (this ffmpeg cannot make it)" >&2
    rm -f "$out/$name"
  fi
}

# H.264 profiles and SPS features, fragmented (a recording's shape).
seed h264-baseline.mp4 $video $audio $x264 -profile:v baseline -c:a libopus $fragmented
seed h264-main-bframes.mp4 $video -c:v libx264 -profile:v main -bf 2 -g 6 $fragmented
seed h264-high-cqm-vui.mp4 $video $x264 -profile:v high -x264-params \
  cqm=jvt:colorprim=bt709:transfer=bt709:colormatrix=bt709:range=pc:chromaloc=1:overscan=show:videoformat=pal:sar=4/3 \
  $fragmented
seed h264-high10.mp4 $video $x264 -pix_fmt yuv420p10le -profile:v high10 $fragmented
seed h264-high422.mp4 $video $x264 -pix_fmt yuv422p -profile:v high422 $fragmented
seed h264-high444-lossless.mp4 $video $x264 -pix_fmt yuv444p -profile:v high444 -qp 0 $fragmented
seed h264-interlaced.mp4 $video $x264 -x264-params interlaced=1:tff=1 $fragmented
seed h264-odd-size-cropped.mp4 -f lavfi -i testsrc2=size=66x38:rate=10:duration=0.6 $x264 $fragmented
seed h264-hrd-cbr.mp4 $video $x264 -b:v 100k -maxrate 100k -bufsize 50k -x264-params nal-hrd=cbr:force-cfr=1 $fragmented
seed h264-avc3.mp4 $video $x264 -tag:v avc3 $fragmented
seed h264-many-refs.mp4 $video -c:v libx264 -preset veryslow -refs 8 -bf 3 -g 6 $fragmented

# Whole-file layouts: moov first or last, edit lists, ctts, metadata, sidx, MOV.
seed plain-faststart.mp4 $video $audio -c:v libx264 -bf 2 -g 6 -c:a aac -movflags +faststart
seed plain-moov-last.mp4 $video $audio $x264 -c:a libopus
seed plain-negative-cts.mp4 $video -c:v libx264 -bf 2 -g 6 -movflags +negative_cts_offsets -use_editlist 0
seed plain-metadata.mp4 $video $x264 -movflags +use_metadata_tags -metadata title=seed -metadata comment=fuzz
seed fragmented-sidx.mp4 $video $audio $x264 -c:a aac -movflags frag_keyframe+empty_moov+global_sidx+dash
seed fragmented-separate-moof.mp4 $video $audio $x264 -c:a libopus -movflags frag_keyframe+empty_moov+separate_moof
seed fragmented-cmaf.mp4 $video $audio $x264 -c:a aac -movflags +cmaf+frag_keyframe+empty_moov -frag_duration 200000
seed timecode.mov $video $x264 -timecode 01:00:00:00
seed fragmented-every-frame-prft.mp4 $video $audio $x264 -c:a libopus -write_prft wallclock \
  -movflags frag_every_frame+empty_moov+omit_tfhd_offset+skip_trailer
seed fragmented-delay-moov.mp4 $video $x264 -movflags frag_keyframe+delay_moov+write_colr -write_btrt 1
seed language-timescale.mp4 $video $audio $x264 -c:a libopus -metadata:s:a language=fra \
  -disposition:a 0 -video_track_timescale 1000000 $fragmented
seed encrypted-cenc.mp4 $video $audio $x264 -c:a aac -encryption_scheme cenc-aes-ctr \
  -encryption_key 00112233445566778899aabbccddeeff -encryption_kid 00112233445566778899aabbccddeeff $fragmented
seed hinted.mp4 $video $x264 -movflags +rtphint
seed subtitles-chapters.mp4 $video -f lavfi -i anullsrc -f ffmetadata -i <(printf ';FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=300\ntitle=one\n') \
  -map 0 -map 1 -map_chapters 2 -t 0.6 $x264 -c:a aac
# Subtitle tracks (tx3g with its font table, stpp), whole and fragmented where ffmpeg can.
srt=$(mktemp --suffix=.srt)
trap 'rm -f "$srt"' EXIT
printf '1\n00:00:00,000 --> 00:00:00,400\n<b>hello</b> <font face="Serif" color="#ff0000">world</font>\n\n2\n00:00:00,400 --> 00:00:00,600\n{\\an8}again\n' >"$srt"
seed subtitles-tx3g.mp4 $video -i "$srt" -map 0 -map 1 $x264 -c:s mov_text
seed subtitles-tx3g-fragmented.mp4 $video -i "$srt" -map 0 -map 1 $x264 -c:s mov_text $fragmented
seed subtitles-ttml.mp4 $video -i "$srt" -map 0 -map 1 $x264 -c:s ttml
# ffmpeg does not write WebVTT into MP4: the TTML file's stpp entry becomes a wvtt one (its moov
# follows the mdat, so no chunk offset moves).
[ ! -f "$out/subtitles-ttml.mp4" ] ||
  python3 "$(dirname "$0")/seed-stpp-to-wvtt.py" "$out/subtitles-ttml.mp4" "$out/subtitles-wvtt.mp4"
seed h264-gray.mp4 $video $x264 -pix_fmt gray -profile:v high $fragmented
seed smooth.ismv $video $audio $x264 -c:a aac -f ismv

# Other sample entries: audio alone, and the video codecs inspect names but does not take.
seed opus-stereo.mp4 $audio -ac 2 -c:a libopus $fragmented
seed aac.mp4 $audio -c:a aac $fragmented
seed flac.mp4 $audio -c:a flac -strict -2 $fragmented
seed alac.m4a $audio -c:a alac
seed mp3.mp4 $audio -c:a libmp3lame
seed two-audio-tracks.mp4 $audio -f lavfi -i sine=frequency=880:duration=0.6 -map 0 -map 1 -c:a libopus $fragmented
seed hevc.mp4 $video -c:v libx265 -preset ultrafast -tag:v hvc1 -x265-params log-level=none $fragmented
seed vp9.mp4 $video -c:v libvpx-vp9 -deadline realtime -cpu-used 8 $fragmented
# (a fragmented AV1 file from ffmpeg has an empty av1C: its sequence header is not known when
# the moov goes out first, so this one is whole.)
seed av1.mp4 $video -c:v libaom-av1 -cpu-used 8 -usage realtime

# SPS shapes no encoder here writes, and SPSs broken in each field, in band (avc3).
python3 "$(dirname "$0")/seed-sps-variants.py" "$out"

# Every leaf box type of the files above cut short, too long, of other versions, with every flag.
python3 "$(dirname "$0")/seed-box-cuts.py" "$out" "$out"/*

ls -l "$out" | awk 'NR > 1 { n++; b += $5 } END { printf "%d seeds, %d bytes\n", n, b }'
