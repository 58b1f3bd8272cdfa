#!/usr/bin/env bash
# Installs the models' own reference runtimes from PyPI, for `switchboard bench stt` and `bench tts` to
# measure beside ours on the same model files and inputs: piper-tts (Piper's runtime), kokoro-onnx
# (Kokoro's ONNX file on Python onnxruntime) and faster-whisper (CTranslate2, the format whisper-tiny
# ships in). Only benchmarks use them; nothing at run time does. Safe to run again.
set -euo pipefail

DIR="${SWITCHBOARD_PYREF:-$HOME/.cache/switchboard/pyref}"
PIP=(python3 -m pip)
if ! "${PIP[@]}" --version >/dev/null 2>&1; then
  echo "reference-runtimes: pip not found; run \`make setup\` (python3-pip) first" >&2
  exit 1
fi
echo "reference-runtimes: installing into $DIR (about 300 MB)" >&2
"${PIP[@]}" install --quiet --disable-pip-version-check --target "$DIR" --upgrade \
  piper-tts==1.8.0 kokoro-onnx==0.6.1 faster-whisper==1.2.1 onnxruntime==1.31.1
echo "reference-runtimes: ready; \`switchboard bench tts\` and \`bench stt\` will now print the comparison" >&2
