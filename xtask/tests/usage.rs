//! Bad command lines to `cargo xtask` are clear usage errors, before any task starts work.

use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn no_task_is_an_error_with_the_list_of_tasks() {
    let out = xtask(&[]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("Usage: cargo xtask <TASK>"), "{err}");
    assert!(err.contains("  conformance "), "{err}");
}

#[test]
fn an_unknown_task_is_named() {
    let out = xtask(&["conformence"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("unrecognized subcommand 'conformence'"),
        "{err}"
    );
    assert!(err.contains("Usage: cargo xtask"), "{err}");
}

#[test]
fn help_lists_every_task_and_succeeds() {
    let out = xtask(&["help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for task in ["conformance", "test", "fs-matrix"] {
        assert!(
            text.contains(&format!("  {task} ")),
            "{task} is missing:\n{text}"
        );
    }
}

#[test]
fn fs_matrix_names_an_unknown_option_or_file_system() {
    let out = xtask(&["fs-matrix", "--bogus"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("unexpected argument '--bogus'"), "{err}");
    assert!(err.contains("Usage: cargo xtask fs-matrix"), "{err}");

    let out = xtask(&["fs-matrix", "--only", "tmpfs,nfs"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("invalid value 'nfs' for '--only"), "{err}");

    let out = xtask(&["fs-matrix", "--impl"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("a value is required for '--impl"), "{err}");
}

#[test]
fn fs_matrix_help_succeeds() {
    let out = xtask(&["fs-matrix", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: cargo xtask fs-matrix"));
}
