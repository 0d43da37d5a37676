//! The real binary at init: a missing or malformed setting stops it with one line naming the
//! variable, before any AWS call.

use std::process::Command;

fn run(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_webhook"));
    cmd.env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the webhook binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_variable_stops_init_with_one_line_naming_it() {
    let (code, stderr) = run(&[
        ("EDDO_EVENT_BUS_NAME", "eddo"),
        ("EDDO_TABLE_NAME", "eddo-state"),
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "eddo: configuration error: EDDO_WEBHOOK_SECRET_ARN: is not set (the template sets it)"
    );
}

#[test]
fn a_malformed_variable_is_named_with_its_value() {
    let (code, stderr) = run(&[
        ("EDDO_EVENT_BUS_NAME", "eddo"),
        ("EDDO_TABLE_NAME", "eddo-state"),
        (
            "EDDO_WEBHOOK_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
        ),
        ("EDDO_WEBHOOK_FORWARD", "bitbucket:push"),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("eddo: configuration error: EDDO_WEBHOOK_FORWARD: \"bitbucket\""),
        "{stderr}"
    );
    let (_, stderr) = run(&[
        ("EDDO_EVENT_BUS_NAME", "eddo"),
        ("EDDO_TABLE_NAME", "eddo-state"),
        ("EDDO_WEBHOOK_SECRET_ARN", "arn"),
        ("EDDO_IDEMPOTENCY_HOURS", "1"),
    ]);
    assert!(
        stderr.contains("EDDO_IDEMPOTENCY_HOURS: 1 is outside 24..=720"),
        "{stderr}"
    );
}
