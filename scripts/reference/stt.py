"""Reference timings for `switchboard bench stt`: the shipped whisper-tiny in its own format (CTranslate2)
on faster-whisper, greedy like ours, on exactly the samples our recogniser gets.

Reads a JSON request on stdin: the model directory, a file of float32 little-endian samples at 16 kHz,
and the (offset, length) of each utterance in it. Prints each transcript and the seconds it took."""

import json
import sys
import time

import numpy as np


def main():
    request = json.load(sys.stdin)
    from faster_whisper import WhisperModel

    model = WhisperModel(request["model"], device="cpu", cpu_threads=request["threads"])
    audio = np.fromfile(request["samples"], dtype="<f4")

    def transcribe(samples):
        segments, _ = model.transcribe(
            samples,
            language="en",
            beam_size=1,
            best_of=1,
            temperature=0.0,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments)

    first_offset, first_length = request["utterances"][0]
    transcribe(audio[first_offset : first_offset + first_length])  # warm-up
    texts, seconds = [], []
    for offset, length in request["utterances"]:
        started = time.perf_counter()
        texts.append(transcribe(audio[offset : offset + length]))
        seconds.append(time.perf_counter() - started)
    json.dump({"texts": texts, "seconds": seconds}, sys.stdout)


if __name__ == "__main__":
    main()
