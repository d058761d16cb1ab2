//! Bakes the default ONNX Runtime library path (fetched by `scripts/setup`) into the
//! binary, so `vigil` runs from a checkout without environment variables.
//! `ORT_DYLIB_PATH` still overrides it at run time.
fn main() {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!(
        "cargo:rustc-env=VIGIL_DEFAULT_ORT_LIB={root}/third_party/onnxruntime/libonnxruntime.so"
    );
    println!("cargo:rustc-env=VIGIL_REPO_ROOT={root}");
    println!("cargo:rerun-if-changed=pipeline/build.rs");
}
