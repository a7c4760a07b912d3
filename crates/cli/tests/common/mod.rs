//! Helpers shared by the command-line test binaries.

// Each test binary uses part of these.
#![allow(dead_code)]

use assert_cmd::Command;

/// The `byzadam` binary of this build.
pub fn byzadam() -> Command {
    Command::cargo_bin("byzadam").unwrap()
}

/// Runs `cmd`, which must succeed; returns its stdout and stderr as text.
pub fn success(cmd: &mut Command) -> (String, String) {
    let out = cmd.assert().success().get_output().clone();
    (
        String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    )
}

/// Runs `cmd`, which must fail; returns its stderr as text.
pub fn failure(cmd: &mut Command) -> String {
    let out = cmd.assert().failure().get_output().clone();
    String::from_utf8(out.stderr).expect("stderr is UTF-8")
}
