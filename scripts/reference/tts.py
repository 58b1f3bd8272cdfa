"""Reference timings for `switchboard bench tts`: the same model files and sentences on the models' own
Python runtimes (piper-tts for Piper, kokoro-onnx for Kokoro's ONNX file).

Reads a JSON request on stdin, prints one JSON object: for every text, the median time to the first
audio chunk and the median total time over the runs, plus the audio length."""

import asyncio
import json
import statistics
import sys
import time


def piper_runner(request):
    from piper import PiperVoice

    voice = PiperVoice.load(request["model"])

    def run(text):
        started = time.perf_counter()
        first = None
        samples = 0
        rate = voice.config.sample_rate
        for chunk in voice.synthesize(text):
            if first is None:
                first = time.perf_counter() - started
            samples += len(chunk.audio_float_array)
        return first, time.perf_counter() - started, samples / rate

    return run


def kokoro_runner(request):
    from kokoro_onnx import Kokoro

    kokoro = Kokoro(request["model"], request["voices"])

    async def stream(text):
        started = time.perf_counter()
        first = None
        seconds = 0.0
        async for audio, rate in kokoro.create_stream(text, voice=request["voice"], lang="en-us"):
            if first is None:
                first = time.perf_counter() - started
            seconds += len(audio) / rate
        return first, time.perf_counter() - started, seconds

    return lambda text: asyncio.run(stream(text))


def main():
    request = json.load(sys.stdin)
    run = {"piper": piper_runner, "kokoro": kokoro_runner}[request["engine"]](request)
    run(request["texts"][0])  # warm-up: the first inference allocates
    results = []
    for text in request["texts"]:
        firsts, totals, audio = [], [], 0.0
        for _ in range(request["runs"]):
            first, total, audio = run(text)
            firsts.append(first)
            totals.append(total)
        results.append(
            {
                "first_chunk_s": statistics.median(firsts),
                "total_s": statistics.median(totals),
                "audio_s": audio,
            }
        )
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
