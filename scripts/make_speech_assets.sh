#!/usr/bin/env bash
# Regenerate omnireward/assets/speech/: short espeak-ng sentences as 16 kHz mono 16-bit FLAC,
# plus manifest.tsv (file, variant, sentence). The audio demo set is built from these clips.
#   needs: espeak-ng (Debian: apt-get install espeak-ng) and the omnireward venv (soundfile, scipy)
#   usage: scripts/make_speech_assets.sh            (PYTHON=... to pick the interpreter)
set -euo pipefail

command -v espeak-ng >/dev/null || { echo "espeak-ng not found (apt-get install espeak-ng)" >&2; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/omnireward/assets/speech"
PY=${PYTHON:-python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

SENTENCES=(
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
# Variant -> espeak-ng flags (-s words per minute, -p pitch 0..99). Every sentence gets "normal";
# sentences 0-7 also get fast/slow and 8-15 high/low, for the criteria-flip pairs.
declare -A FLAGS=([normal]="-s 175 -p 50" [fast]="-s 270 -p 50" [slow]="-s 115 -p 50"
                  [high]="-s 175 -p 90" [low]="-s 175 -p 10")

: > "$TMP/list.tsv"
for i in "${!SENTENCES[@]}"; do
  variants=(normal)
  if (( i < 8 )); then variants+=(fast slow); elif (( i < 16 )); then variants+=(high low); fi
  for v in "${variants[@]}"; do
    name=$(printf "s%02d_%s" "$i" "$v")
    # shellcheck disable=SC2086
    espeak-ng -v en ${FLAGS[$v]} -w "$TMP/$name.wav" "${SENTENCES[$i]}"
    printf "%s\t%s\t%s\n" "$name.flac" "$v" "${SENTENCES[$i]}" >> "$TMP/list.tsv"
  done
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
for name, variant, sentence in rows:
    x = load_audio(tmp / name.replace(".flac", ".wav"), sample_rate=16000, max_seconds=None)
    # Trim espeak's leading/trailing silence to 50 ms margins: it is most of the bytes otherwise.
    loud = np.nonzero(np.abs(x) > 0.01)[0]
    x = x[max(0, loud[0] - 800): loud[-1] + 800]
    x = 0.9 * x / np.abs(x).max()
    sf.write(out / name, x, 16000, format="FLAC", subtype="PCM_16")
(out / "manifest.tsv").write_text("file\tvariant\tsentence\n" +
                                  "".join("\t".join(r) + "\n" for r in rows))
total = sum(p.stat().st_size for p in out.iterdir())
print(f"wrote {len(rows)} clips to {out} ({total / 1e6:.2f} MB)")
EOF
