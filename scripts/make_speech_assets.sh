#!/usr/bin/env bash
# Regenerate omnireward/assets/speech/: short espeak-ng sentences as 16 kHz mono 16-bit FLAC, plus
# manifest.tsv (file, split, voice, variant, sentence). The audio demo set is built from these clips.
# Sources are split: the "train" sentences are spoken only by the train voices, the "test" sentences
# only by the test voices, so the demo's test pairs hold words and voices its train pairs never have.
#   needs: espeak-ng (Debian: apt-get install espeak-ng) and the omnireward venv (soundfile, scipy)
#   usage: scripts/make_speech_assets.sh            (PYTHON=... to pick the interpreter)
set -euo pipefail

command -v espeak-ng >/dev/null || { echo "espeak-ng not found (apt-get install espeak-ng)" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/omnireward/assets/speech"
PY=${PYTHON:-python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

TRAIN_SENTENCES=(
  "the cat is sleeping"
  "open the window please"
  "it is raining again"
  "the train leaves at noon"
  "I like green apples"
  "turn left at the bridge"
  "the soup is too hot"
  "we lost the red ball"
  "call me after lunch"
  "the dog wants to play"
  "close the door quietly"
  "my phone is broken"
  "the sky is very blue"
  "bring two cups of tea"
  "the birds sing at dawn"
  "please wash your hands"
  "the shop opens at nine"
  "she reads a long book"
  "the river is cold"
  "put the keys on the table"
  "he plays the piano"
  "the lamp is too bright"
  "we walked along the beach"
  "the bus is late today"
)
# No content word of these occurs in a train sentence.
TEST_SENTENCES=(
  "the garden needs more water"
  "my brother fixed the car"
  "a small boat crossed the lake"
  "the clock stopped at midnight"
  "she painted the fence white"
  "he forgot his umbrella"
  "our team won the match"
  "the baker sells fresh bread"
  "a strong wind blows from the north"
  "the children are laughing"
  "the museum was empty"
  "grandma knits warm socks"
)
# espeak-ng voice (language+variant) -> file tag. Two voices per split; no voice is in both.
declare -A TRAIN_VOICES=([en]=en [en-us+f3]=usf3)
declare -A TEST_VOICES=([en-gb-x-gbclan+m2]=lancm2 [en-gb-x-rp+f1]=rpf1)
# Variant -> espeak-ng flags (-s words per minute, -p pitch 0..99). Every sentence gets "normal"; the
# first third of a split's sentences also get fast/slow and the second third high/low (criteria flips).
declare -A FLAGS=([normal]="-s 175 -p 50" [fast]="-s 270 -p 50" [slow]="-s 115 -p 50"
                  [high]="-s 175 -p 90" [low]="-s 175 -p 10")

: > "$TMP/list.tsv"
speak() {  # split voice tag prefix sentences...
  local split=$1 voice=$2 tag=$3 prefix=$4
  shift 4
  local sentences=("$@") third=$(( $# / 3 ))
  for i in "${!sentences[@]}"; do
    local variants=(normal)
    if (( i < third )); then variants+=(fast slow); elif (( i < 2 * third )); then variants+=(high low); fi
    for v in "${variants[@]}"; do
      local name
      name=$(printf "%s_%s%02d_%s" "$tag" "$prefix" "$i" "$v")
      # shellcheck disable=SC2086
      espeak-ng -v "$voice" ${FLAGS[$v]} -w "$TMP/$name.wav" "${sentences[$i]}"
      printf "%s\t%s\t%s\t%s\t%s\n" "$name.flac" "$split" "$voice" "$v" "${sentences[$i]}" >> "$TMP/list.tsv"
    done
  done
}
for voice in $(printf "%s\n" "${!TRAIN_VOICES[@]}" | sort); do
  speak train "$voice" "${TRAIN_VOICES[$voice]}" s "${TRAIN_SENTENCES[@]}"
done
for voice in $(printf "%s\n" "${!TEST_VOICES[@]}" | sort); do
  speak test "$voice" "${TEST_VOICES[$voice]}" t "${TEST_SENTENCES[@]}"
done

rm -rf "$OUT" && mkdir -p "$OUT"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" - "$TMP" "$OUT" <<'EOF'
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from omnireward.data.media import load_audio

tmp, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = [line.split("\t") for line in (tmp / "list.tsv").read_text().splitlines()]
for name, *_ in rows:
    x = load_audio(tmp / name.replace(".flac", ".wav"), sample_rate=16000, max_seconds=None)
    # Trim espeak's leading/trailing silence to 50 ms margins: it is most of the bytes otherwise.
    loud = np.nonzero(np.abs(x) > 0.01)[0]
    x = x[max(0, loud[0] - 800): loud[-1] + 800]
    x = 0.9 * x / np.abs(x).max()
    sf.write(out / name, x, 16000, format="FLAC", subtype="PCM_16")
(out / "manifest.tsv").write_text("file\tsplit\tvoice\tvariant\tsentence\n" +
                                  "".join("\t".join(r) + "\n" for r in rows))
total = sum(p.stat().st_size for p in out.iterdir())
print(f"wrote {len(rows)} clips to {out} ({total / 1e6:.2f} MB)")
EOF
