#!/usr/bin/env bash
# GPU check, ready to run in one call: nf4 against bf16 scoring (peak GPU memory, pairs/s, sign
# agreement of margins), a bf16 BT training step against TRL's RewardTrainer (pairs/s, peak GPU
# memory) and `omnireward serve` at 1 and 32 clients, on an LM of Qwen2.5-7B's architecture with
# random weights built on the GPU (benchmarks/gpu_check.py says what each part does). It needs no
# network: the model, its tokenizer and the pairs are made in code. Sized to finish in under
# 8 minutes on one H100 (an estimate until it has run there). Results: one line per part
# (check = nf4_vs_bf16, train_vs_trl, serve) in RESULTS/gpu_check.jsonl.
#
#   bash benchmarks/gpu_check.sh [--results DIR] [--only scoring,train,serve] [--commit HASH]
#   bash benchmarks/gpu_check.sh --tiny [--results DIR]   # the same code on CPU, tiny model (tests run it)
#
# On a GPU machine without network (Python 3.12 with torch, transformers, lightning, peft, rich
# and typer, plus numpy, pandas, pyarrow, scipy, matplotlib, tensorboard, pillow, fsspec, xxhash):
#
#   1. Here, where pip reaches the package index, fetch what that machine lacks, as wheels for
#      CPython 3.12 on x86-64 Linux, in the versions installed here (about 46 MiB in all):
#        echo /.whl/ >> .git/info/exclude
#        bash benchmarks/gpu_check.sh --fetch-wheels .whl
#      bitsandbytes (about 43 MB: its CUDA 11.8 to 13.2 kernels), trl with datasets, dill and
#      multiprocess (its own needs pandas and pyarrow are assumed there: carrying pyarrow would pass
#      the 60 MiB that travel beside bitsandbytes), hydra-core, omegaconf, antlr4-python3-runtime
#      (source only: built into a wheel here), and for the server fastapi, starlette, uvicorn,
#      pydantic, pydantic-core, annotated-types, typing-inspection and opentelemetry-api. The
#      `wheel` and `setuptools` packages must be there (the repository installs without an index).
#   2. There, with .whl carried beside the working tree, a 600 s limit, the commit the tree was
#      copied from (the copy may lack .git) and the results written where they come back:
#        bash benchmarks/gpu_check.sh --wheels .whl --results "$OUT" --commit HASH 2>&1 | tee "$OUT/gpu_check.log"
#      --wheels installs the wheels and then this repository itself (editable, no index, no build
#      isolation) into that Python, which `omnireward serve` needs.
#   3. Here, append the returned gpu_check.jsonl to benchmarks/results/gpu_check.jsonl.
#
# A part that fails writes its line with status "error" and the end of its log; the others still
# run, and the script exits 1. `--only` splits the check over two calls if needed: datasets 5.2
# asks for pyarrow>=24, and if that machine's is older and TRL does not import, run
# `--only train` in a second call with a pyarrow wheel (over 40 MB) carried instead of bitsandbytes.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3
fi

args=()
wheels=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --wheels) wheels="$2"; shift 2 ;;
        --wheels=*) wheels="${1#--wheels=}"; shift ;;
        *) args+=("$1"); shift ;;
    esac
done

if [[ -n "$wheels" ]]; then
    pip=("$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-build-isolation --no-compile)
    shopt -s nullglob
    files=("$wheels"/*.whl)
    if [[ ${#files[@]} -eq 0 ]]; then echo "no wheels in $wheels" >&2; exit 2; fi
    "${pip[@]}" "${files[@]}"
    # omnireward.conf and omnireward.cli live in conf/ and cli/ (mapped by pyproject): it must be installed.
    if ! "$PY" -c "import omnireward.conf, omnireward.cli" 2>/dev/null; then
        "${pip[@]}" -e .
    fi
fi

export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_check.py "${args[@]}"
