//! One cfg for the x86-64 fast paths: `byzadam_x86` is set when compiling for x86-64 without
//! the `portable` feature. Every AVX2 + FMA build and intrinsic is behind it, in modules
//! compiled only then (`cpu/x86.rs`, `gemm/x86.rs`); `--features portable` builds and tests
//! on x86-64 exactly what every other architecture runs.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(byzadam_x86)");
    println!("cargo::rerun-if-changed=build.rs");
    let x86_64 = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "x86_64");
    let portable = std::env::var_os("CARGO_FEATURE_PORTABLE").is_some();
    if x86_64 && !portable {
        println!("cargo::rustc-cfg=byzadam_x86");
    }
}
