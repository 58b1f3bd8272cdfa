//! Link settings for the binary, which carries both whisper.cpp (static, with its own ggml) and llama.cpp
//! (shared libraries, with theirs; switchboard-llm's build script puts them next to the binary).

fn main() {
    // Keep the statically linked ggml of whisper.cpp out of the dynamic symbol table, so llama.cpp's
    // shared libraries bind to their own ggml and not to the binary's.
    println!("cargo:rustc-link-arg=-Wl,--exclude-libs,ALL");
    // Find libllama.so.0 and its ggml next to the binary. DT_RPATH rather than the newer DT_RUNPATH:
    // only the former is also searched for the libraries libllama itself needs (libggml.so.0).
    println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags");
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN");
    println!("cargo:rerun-if-changed=build.rs");
}
