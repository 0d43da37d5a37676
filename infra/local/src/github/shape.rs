//! Each request body as GitHub's published REST API description requires it: the schemas of the
//! operations eddo calls, vendored in `infra/schemas/contracts/github/` with the description's
//! repository, path and commit, and the rule the description states in words (a completed check
//! run has a conclusion).

use std::sync::LazyLock;

use serde_json::Value;

fn validator(schema: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(schema).expect("a vendored schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("a vendored schema is a schema")
}

static CREATE: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    validator(include_str!(
        "../../../schemas/contracts/github/checks-create.request.schema.json"
    ))
});

static UPDATE: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    validator(include_str!(
        "../../../schemas/contracts/github/checks-update.request.schema.json"
    ))
});

static REVIEW: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    validator(include_str!(
        "../../../schemas/contracts/github/actions-review-custom-gates-for-run.request.schema.json"
    ))
});

/// `POST /repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule`
/// (actions/review-custom-gates-for-run).
pub fn review_protection_rule(body: &Value) -> Result<(), String> {
    let errors: Vec<String> = REVIEW
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("Invalid request. {}", errors.join("; ")))
    }
}

fn judged(v: &jsonschema::Validator, body: &Value) -> Result<(), String> {
    let errors: Vec<String> = v
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if !errors.is_empty() {
        return Err(format!("Invalid request. {}", errors.join("; ")));
    }
    // "Required if you provide `completed_at` or a `status` of `completed`" (conclusion).
    let completes = body["status"] == "completed" || !body["completed_at"].is_null();
    if completes && body["conclusion"].is_null() {
        return Err("Invalid request. conclusion is required when status is completed or completed_at is given".into());
    }
    Ok(())
}

/// `POST /repos/{owner}/{repo}/check-runs` (checks/create).
pub fn create_check_run(body: &Value) -> Result<(), String> {
    judged(&CREATE, body)
}

/// `PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}` (checks/update).
pub fn update_check_run(body: &Value) -> Result<(), String> {
    judged(&UPDATE, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn github_refuses_what_its_description_refuses() {
        let ok = json!({"name": "eddo gate", "head_sha": "a", "status": "in_progress",
            "output": {"title": "t", "summary": "s"}});
        assert!(create_check_run(&ok).is_ok());
        let mut no_sha = ok.clone();
        no_sha.as_object_mut().unwrap().remove("head_sha");
        assert!(create_check_run(&no_sha).is_err());
        let completed = json!({"name": "n", "head_sha": "a", "status": "completed"});
        assert!(create_check_run(&completed).is_err(), "no conclusion");
        let long = json!({"output": {"title": "t", "summary": "x".repeat(65_536)}});
        assert!(update_check_run(&long).is_err());
        let when = json!({"conclusion": "success", "completed_at": "yesterday"});
        assert!(update_check_run(&when).is_err(), "not a date-time");
        let many = json!({"output": {"summary": "s", "annotations": (0..51).map(|i| json!({
            "path": "a", "start_line": i, "end_line": i, "annotation_level": "notice", "message": "m"
        })).collect::<Vec<_>>()}});
        assert!(update_check_run(&many).is_err(), "over 50 annotations");
    }

    #[test]
    fn a_review_names_its_environment_and_a_state_or_comment() {
        let ok = json!({"environment_name": "production", "state": "approved", "comment": "ok"});
        assert!(review_protection_rule(&ok).is_ok());
        assert!(review_protection_rule(&json!({"environment_name": "p", "comment": "c"})).is_ok());
        assert!(review_protection_rule(&json!({"environment_name": "p"})).is_err());
        assert!(
            review_protection_rule(&json!({"environment_name": "p", "state": "maybe"})).is_err()
        );
        assert!(review_protection_rule(&json!({"state": "approved", "comment": "c"})).is_err());
    }
}
