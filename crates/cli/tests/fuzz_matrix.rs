//! Fuzz tests of the matrix-file parsers (`.npy`, `.csv`, `.json`; issue 22): arbitrary bytes
//! and structure-aware inputs (valid headers with hostile shapes, rows of hostile tokens). For
//! each, 10,000 cases: no panic, no case slower than a second, and no allocation larger than a
//! bound far above what inputs this small can legitimately need.

#[path = "../../../tests/support/fuzz.rs"]
mod fuzz;

use byzadam_cli::matrix_io::{parse, Format};
use proptest::prelude::*;
use std::time::Duration;

#[global_allocator]
static ALLOC: fuzz::PeakAlloc = fuzz::PeakAlloc;

/// Inputs here are at most a few kilobytes: nothing needs more than 16 MiB at once.
const BOUND: usize = 16 << 20;

/// Parses, checking the time bound; on success the matrix is consistent with itself.
fn check(format: Format, bytes: &[u8]) {
    let what = format!("{format:?}, {} bytes", bytes.len());
    fuzz::timed(&what, Duration::from_secs(1), BOUND, || {
        if let Ok(s) = parse(format, bytes) {
            assert!(s.n() >= 1 && s.dim() >= 1);
            assert_eq!(s.rows().count(), s.n());
        }
    });
}

/// An `.npy` file: magic, version, a header dict with the given pieces, then `data` bytes.
fn npy(version: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let mut header = dict.into_bytes();
    let pre = if version == 1 { 10 } else { 12 };
    while (pre + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.push(version);
    out.push(0);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out
}

fn dimension() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..6).prop_map(|d| d.to_string()),
        any::<u64>().prop_map(|d| d.to_string()),
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
        Just("9223372036854775807".to_string()),
        Just("4294967296".to_string()),
    ]
}

fn shape() -> impl Strategy<Value = String> {
    prop_oneof![
        (dimension(), dimension()).prop_map(|(a, b)| format!("({a}, {b})")),
        dimension().prop_map(|a| format!("({a},)")),
        (dimension(), dimension(), dimension()).prop_map(|(a, b, c)| format!("({a}, {b}, {c})")),
        Just("()".to_string()),
        "[ -~]{0,12}".prop_map(|s| s),
    ]
}

fn descr() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<f4".to_string()),
        Just(">f4".to_string()),
        Just("<f8".to_string()),
        Just(">f8".to_string()),
        Just("<i4".to_string()),
        Just("|O".to_string()),
        Just("<f2".to_string()),
        "[<>|][a-z][0-9]{1,2}".prop_map(|s| s),
    ]
}

/// A CSV or JSON token: numbers (some past float32's range), spellings of ±∞ and NaN, and
/// things that are not numbers.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<f32>().prop_map(|x| x.to_string()),
        any::<f64>().prop_map(|x| x.to_string()),
        any::<i64>().prop_map(|x| x.to_string()),
        Just("1e39".to_string()),
        Just("-1e39".to_string()),
        Just("1e400".to_string()),
        Just("inf".to_string()),
        Just("-Infinity".to_string()),
        Just("nan".to_string()),
        Just(String::new()),
        Just("\"1\"".to_string()),
        "[ -~]{0,6}".prop_map(|s| s),
    ]
}

proptest! {
    #![proptest_config(fuzz::config())]

    #[test]
    fn npy_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(Format::Npy, &bytes);
    }

    #[test]
    fn npy_hostile_headers(
        version in 1u8..=3,
        descr in descr(),
        fortran in any::<bool>(),
        shape in shape(),
        data in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let bytes = npy(version, &descr, fortran, &shape, &data);
        check(Format::Npy, &bytes);
        // The same file cut short anywhere.
        let cut = bytes.len() / 2;
        check(Format::Npy, &bytes[..cut]);
    }

    #[test]
    fn csv_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(Format::Csv, &bytes);
    }

    #[test]
    fn csv_hostile_rows(
        rows in proptest::collection::vec(proptest::collection::vec(token(), 0..6), 0..8),
        separator in prop_oneof![Just(","), Just(";"), Just(", "), Just("\t")],
        newline in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
    ) {
        let text: Vec<String> = rows.iter().map(|r| r.join(separator)).collect();
        check(Format::Csv, text.join(newline).as_bytes());
    }

    #[test]
    fn json_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(Format::Json, &bytes);
    }

    #[test]
    fn json_hostile_arrays(
        rows in proptest::collection::vec(proptest::collection::vec(token(), 0..6), 0..8),
        depth in 0usize..200,
    ) {
        let inner: Vec<String> = rows.iter().map(|r| format!("[{}]", r.join(","))).collect();
        let text = format!("{}[{}]{}", "[".repeat(depth), inner.join(","), "]".repeat(depth));
        check(Format::Json, text.as_bytes());
    }
}

#[test]
fn a_header_claiming_a_huge_shape_is_truncated_not_allocated() {
    for shape in [
        "(100000000000, 100000)",
        "(18446744073709551615, 18446744073709551615)",
        "(4294967296, 4294967296)",
    ] {
        let bytes = npy(1, "<f4", false, shape, &[0; 64]);
        let e = parse(Format::Npy, &bytes).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{shape}: {e}");
    }
    fuzz::assert_at_most(BOUND, "huge headers");
}
