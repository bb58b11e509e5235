//! The train example refuses bad flags before any work: a one-line sentence
//! and exit code 2 for usage errors, 1 for run-time errors, never a panic.
//! `cargo test` builds the example next to this test's binary.

use std::path::PathBuf;
use std::process::Command;

fn train() -> Command {
    // target/<profile>/deps/train_cli-… → target/<profile>/examples/train
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin: PathBuf = dir
        .join("examples")
        .join(format!("train{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} not built", bin.display());
    let mut cmd = Command::new(bin);
    cmd.arg("--quiet");
    cmd
}

/// Runs the example with `args`; returns (exit code, stderr).
fn run(args: &[&str]) -> (i32, String) {
    let out = train().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn usage_errors_exit_2_with_a_sentence() {
    for (args, says) in [
        (
            &["--batch", "0"][..],
            "--batch 0: a batch needs at least one example",
        ),
        (
            &["--epochs", "0"],
            "--epochs 0: training needs at least one epoch",
        ),
        (&["--lr", "0"], "--lr 0 must be a finite number above 0"),
        (
            &["--lr", "-0.1"],
            "--lr -0.1 must be a finite number above 0",
        ),
        (&["--lr", "NaN"], "--lr NaN must be a finite number above 0"),
        (&["--lr", "inf"], "--lr inf must be a finite number above 0"),
        (
            &["--lr-decay", "1.5"],
            "--lr-decay 1.5 must be a factor in (0, 1]",
        ),
        (
            &["--weight-decay", "-1"],
            "--weight-decay -1 must be a finite number of at least 0",
        ),
        (
            &["--threads", "0"],
            "--threads 0: training needs at least one thread",
        ),
        (
            &["--sizes", "785,10"],
            "--sizes 785,10 must start with 784 (pixels), end with 10 (classes), and have no 0",
        ),
        (
            &["--sizes", "784,0,10"],
            "--sizes 784,0,10 must start with 784 (pixels), end with 10 (classes), and have no 0",
        ),
        (
            &["--model", "cnn", "--sizes", "784,10"],
            "--sizes sets the MLP's layers; it does not apply to --model cnn",
        ),
        (
            &["--model", "rnn"],
            "invalid value 'rnn' for '--model <MODEL>'",
        ),
        (&["--batch", "-1"], "unexpected argument '-1'"),
    ] {
        let (code, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn run_time_errors_exit_1_with_a_sentence() {
    let dir = std::env::temp_dir().join(format!("train-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("out");
    let (code, err) = run(&["--out", under_file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: cannot create --out "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let missing = dir.join("no-mnist-here");
    let (code, err) = run(&[
        "--data",
        missing.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("no-mnist-here"), "{err}");
    assert!(!err.contains("Io {"), "a debug dump: {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
