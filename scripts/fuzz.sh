#!/usr/bin/env bash
# Runs every fuzz target under fuzz/ for a bounded time each, seeded with the golden wire fixtures.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); runs on the stable toolchain without a sanitizer
# (`--sanitizer none`): the decoders are safe Rust, so what the fuzzer looks for is panics and broken
# round trips. A crash leaves its input under fuzz/artifacts/<target>/ and a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is not installed; run: cargo install cargo-fuzz --locked" >&2
    exit 1
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

# Seeds: each line of the recorded Twilio and ARI sessions is one message.
fixtures=crates/telephony/tests/fixtures
seed() {
    local target="$1" file="$2"
    mkdir -p "fuzz/corpus/$target"
    local n=0
    while IFS= read -r line; do
        n=$((n + 1))
        printf '%s' "$line" > "fuzz/corpus/$target/seed-$(basename "$file")-$n"
    done < "$file"
}
[ -f "$fixtures/twilio_media_stream.jsonl" ] && seed twilio_media_stream "$fixtures/twilio_media_stream.jsonl"
for file in "$fixtures"/ari_*.jsonl; do
    [ -f "$file" ] && seed ari_event "$file"
done
[ -f "$fixtures/audiosocket_call.bin" ] && mkdir -p fuzz/corpus/audiosocket_frames &&
    cp "$fixtures/audiosocket_call.bin" fuzz/corpus/audiosocket_frames/seed-call
# An SDP offer as a softphone sends it, and an RTP packet of µ-law silence.
mkdir -p fuzz/corpus/sdp_offer fuzz/corpus/rtp_packet
printf 'v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n' \
    > fuzz/corpus/sdp_offer/seed-softphone
mkdir -p fuzz/corpus/sip_message
printf 'INVITE sip:agent@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\nFrom: "Caller" <sip:+14155550100@192.0.2.10>;tag=1928301774\r\nTo: <sip:agent@192.0.2.1>\r\nCall-ID: a84b4c76e66710@192.0.2.10\r\nCSeq: 314159 INVITE\r\nContact: <sip:caller@192.0.2.10>;expires=60\r\nContent-Type: application/sdp\r\nContent-Length: 98\r\n\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n' \
    > fuzz/corpus/sip_message/seed-invite
printf 'SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKreg\r\nFrom: <sip:1001@pbx>;tag=a\r\nTo: <sip:1001@pbx>;tag=b\r\nCall-ID: reg1\r\nCSeq: 1 REGISTER\r\nWWW-Authenticate: Digest realm="pbx", nonce="abc", algorithm=MD5, qop="auth"\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n' \
    > fuzz/corpus/sip_message/seed-challenge
{ printf '\x80\x00\x00\x01\x00\x00\x00\xa0\x00\x00\x00\x2a'; head -c 160 /dev/zero | tr '\0' '\377'; } \
    > fuzz/corpus/rtp_packet/seed-ulaw

for target in "${targets[@]}"; do
    echo "fuzz: $target for ${seconds} s"
    mkdir -p "fuzz/corpus/$target"
    (cd fuzz && cargo fuzz run --sanitizer none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 | tail -n 12)
done
