use super::*;

const GOOD: &str = r#"
version: 1
services:
  payments:
    repositories: [acme/payments]
    branches: [main]
    projects: {build: payments-build, sast: payments-sast, deploy: payments-deploy}
    image_repository: payments
    gate:
      require: [build, image-scan, sast]
      max_findings: {CRITICAL: 0, HIGH: 2}
      exceptions:
        - {id: CVE-2024-1234, reason: not reachable, expires: "2027-01-31"}
      deadline_minutes: 30
"#;

#[test]
fn a_good_policy_parses_into_lookups() {
    let p = Policy::parse(GOOD).unwrap();
    let s = p.service("payments").unwrap();
    assert_eq!(s.gate.mode, Mode::Enforce);
    assert_eq!(s.gate.max_findings[&Severity::High], 2);
    assert_eq!(s.gate.exceptions[0].expires.to_string(), "2027-01-31");
    assert_eq!(p.project("payments-sast").unwrap().1, ProjectRole::Sast);
    assert_eq!(p.project("payments-deploy").unwrap().1, ProjectRole::Deploy);
    assert!(p.project("other").is_none());
    assert_eq!(
        p.image_repository("payments").unwrap().name.as_str(),
        "payments"
    );
    assert_eq!(p.repository("ACME/Payments").count(), 1);
    assert_eq!(s.checks.github, None, "no check runs unless asked for");
    let shown = GOOD.replace(
        "    image_repository: payments\n",
        "    image_repository: payments\n    checks: {github: acme/payments}\n",
    );
    let p = Policy::parse(&shown).unwrap();
    let github = p.service("payments").unwrap().checks.github.as_ref();
    assert_eq!(github.map(RepoName::as_str), Some("acme/payments"));
}

#[test]
fn each_mistake_is_named_where_it_is() {
    for (change, says) in [
        (("version: 1", "version: 2"), "version 2 is not supported"),
        (
            ("require: [build", "requir: [build"),
            "unknown field `requir`",
        ),
        (
            ("payments:\n    repo", "Payments:\n    repo"),
            "not a service name",
        ),
        (
            ("acme/payments", "payments"),
            "not a repository like owner/name",
        ),
        (
            ("build: payments-build, ", ""),
            "services.payments.projects.build: the gate requires build",
        ),
        (
            ("    image_repository: payments\n", ""),
            "services.payments.image_repository",
        ),
        (
            (
                "    image_repository: payments\n",
                "    image_repository: payments\n    checks: {github: acme/billing}\n",
            ),
            "services.payments.checks.github: acme/billing is not one of the service's repositories",
        ),
        (
            ("deadline_minutes: 30", "deadline_minutes: 0"),
            "0 is not between 1 and 1440",
        ),
        (
            ("2027-01-31", "2027-02-30"),
            "gate.exceptions[0].expires: \"2027-02-30\" is not a date",
        ),
        (
            ("reason: not reachable", "reason: ' '"),
            "write down the reason",
        ),
        (
            ("sast: payments-sast", "sast: payments-build"),
            "project payments-build is already used by this service",
        ),
        (("HIGH: 2", "SEVERE: 2"), "SEVERE"),
        (
            ("[build, image-scan, sast]", "[build, image-scan, dast]"),
            "dast",
        ),
    ] {
        let text = GOOD.replacen(change.0, change.1, 1);
        assert_ne!(text, GOOD, "{change:?} changed nothing");
        let err = Policy::parse(&text).unwrap_err().to_string();
        assert!(err.contains(says), "{change:?}: {err}");
    }
}

#[test]
fn senders_are_named_per_signal_and_the_proven_ones_come_with_the_projects() {
    let text = GOOD.replace(
            "      deadline_minutes: 30",
            "      deadline_minutes: 30\n      senders:\n        sast: [{check: CodeQL, app: github-actions, workflow: .github/workflows/codeql.yml, event: push}]\n        contract: [{sender: contract-check}, {source: com.acme.ci}, {check: pact, app: pactflow, app_id: 4242}]\n        test: [{cdevents: dev.cdevents.testsuiterun.finished, sender: tekton}]",
        );
    let p = Policy::parse(&text).unwrap();
    let g = &p.service("payments").unwrap().gate;
    assert_eq!(
        g.senders(&SignalKind::parse("test").unwrap()),
        &[Sender::CdEvent {
            predicate: "testsuiterun.finished",
            sender: SenderName::parse("tekton").unwrap(),
        }]
    );
    let sast = g.senders(&SignalKind::Sast);
    assert_eq!(
        sast,
        &[
            Sender::Project(ProjectName::parse("payments-sast").unwrap()),
            Sender::Check(CheckRule {
                name: "CodeQL".into(),
                app: "github-actions".into(),
                app_id: None,
                workflow: Some(".github/workflows/codeql.yml".into()),
                event: Some("push".into()),
                any_workflow: false,
            })
        ]
    );
    // A pinned check counts only from its workflow file and event; an app pinned by id only
    // from the app with that id, whatever its slug says.
    let seen = |name, app, app_id, workflow, event| CheckSeen {
        name,
        app,
        app_id,
        workflow,
        event,
    };
    let codeql = Some(".github/workflows/codeql.yml");
    let sast = &SignalKind::Sast;
    assert!(
        g.check_sender(
            sast,
            &seen("CodeQL", "github-actions", None, codeql, Some("push"))
        )
        .is_some()
    );
    for other in [
        seen("CodeQL", "github-actions", None, None, None),
        seen(
            "CodeQL",
            "github-actions",
            None,
            Some(".github/workflows/fake.yml"),
            Some("push"),
        ),
        seen(
            "CodeQL",
            "github-actions",
            None,
            codeql,
            Some("pull_request"),
        ),
        seen("CodeQL", "another-app", None, codeql, Some("push")),
    ] {
        assert!(g.check_sender(sast, &other).is_none(), "{other:?}");
    }
    assert!(
        g.check_sender(
            &contract_kind(),
            &seen("pact", "pactflow", Some(4242), None, None)
        )
        .is_some()
    );
    assert!(
        g.check_sender(
            &contract_kind(),
            &seen("pact", "pactflow", Some(1), None, None)
        )
        .is_none()
    );
    assert!(
        g.check_sender(
            &contract_kind(),
            &seen("pact", "pactflow", None, None, None)
        )
        .is_none()
    );
    assert!(g.counts(&SignalKind::ImageScan, &Sender::ImageScanner));
    assert!(g.counts(
        &SignalKind::Build,
        &Sender::Project(ProjectName::parse("payments-build").unwrap())
    ));
    let contract = SignalKind::parse("contract").unwrap();
    assert!(g.counts(&contract, &Sender::Source("com.acme.ci".into())));
    assert!(!g.counts(&SignalKind::Sast, &Sender::Source("com.acme.ci".into())));
    assert_eq!(
        p.signal_sources().into_iter().collect::<Vec<_>>(),
        ["com.acme.ci"]
    );

    for (senders, says) in [
        ("sast: [{check: CodeQL}]", "names the GitHub App"),
        ("sast: [{source: eddo.webhook}]", "reserved"),
        ("sast: [{source: aws.codebuild}]", "reserved"),
        (
            "build: [{source: com.acme.ci}]",
            "build is reported by the service's build project only",
        ),
        ("sast: [{sender: Chat Ops}]", "not a sender name"),
        ("sast: [{sender: a, source: b}]", "one of"),
        (
            "approval: [{check: x, app: y}]",
            "a GitHub check cannot report approval",
        ),
        (
            "sast: [{check: CodeQL, app: github-actions}]",
            "any workflow can create a check of that name",
        ),
        (
            "sast: [{source: com.acme.ci, workflow: x.yml}]",
            "pin a check",
        ),
        (
            "test: [{cdevents: dev.cdevents.testsuiterun.finished}]",
            "names its sender",
        ),
        (
            "test: [{cdevents: dev.cdevents.testsuiterun.finished.0.3.0, sender: tekton}]",
            "without its version",
        ),
        (
            "test: [{cdevents: dev.cdevents.pipelinerun.finished, sender: tekton}]",
            "not a CDEvents type eddo takes",
        ),
        (
            "image-scan: [{cdevents: dev.cdevents.artifact.signed, sender: tekton}]",
            "not a CDEvent",
        ),
        (
            "test: [{cdevents: dev.cdevents.testsuiterun.finished, sender: tekton, source: x}]",
            "{cdevents, sender}",
        ),
    ] {
        let text = GOOD.replace(
            "      deadline_minutes: 30",
            &format!("      deadline_minutes: 30\n      senders: {{{senders}}}"),
        );
        let err = Policy::parse(&text).unwrap_err().to_string();
        assert!(err.contains(says), "{senders}: {err}");
    }
    // A required signal nobody may report, a scan without a build, the old key.
    for (change, says) in [
        ("[build, image-scan, sast]", "nobody can report dast"),
        ("[build, image-scan, sast]", "image-scan needs build"),
    ] {
        let to = if says.contains("dast") {
            "[build, image-scan, dast]"
        } else {
            "[image-scan, sast]"
        };
        let err = Policy::parse(&GOOD.replace(change, to))
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{err}");
    }
    let err = Policy::parse(&GOOD.replace(
        "      deadline_minutes: 30",
        "      deadline_minutes: 30\n      sast_checks: [CodeQL]",
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("replaced by gate.senders.sast"), "{err}");
}

const WITH_ROLLBACK: &str = r#"
version: 1
services:
  payments:
    repositories: [acme/payments]
    branches: [main]
    projects: {deploy: payments-deploy, rollback: payments-rollback}
    gate: {require: [approval], senders: {approval: [{sender: chatops}]}, deadline_minutes: 30}
    rollback:
      alarms: [payments-5xx, "arn:aws:cloudwatch:*:*:alarm:payments-*"]
      bake_minutes: 60
"#;

#[test]
fn a_rollback_section_has_defaults_and_maps_alarms() {
    let p = Policy::parse(WITH_ROLLBACK).unwrap();
    let r = p.service("payments").unwrap().rollback.clone().unwrap();
    assert_eq!(
        (
            r.cooldown_minutes,
            r.max_rollbacks,
            r.window_hours,
            r.hold_minutes
        ),
        (30, 3, 24, 60)
    );
    assert_eq!(r.mode, RollbackMode::Enforce);
    assert!(!r.on_insufficient_data);
    assert_eq!(p.alarm("payments-5xx", None).count(), 1);
    assert_eq!(
        p.alarm(
            "payments-latency",
            Some("arn:aws:cloudwatch:eu-west-1:1:alarm:payments-latency")
        )
        .count(),
        1
    );
    // A name pattern never matches an ARN pattern's text, and the reverse.
    assert_eq!(p.alarm("payments-latency", None).count(), 0);
    assert_eq!(
        p.alarm("other", Some("arn:aws:cloudwatch:x:1:alarm:other"))
            .count(),
        0
    );
}

#[test]
fn alerts_map_to_the_services_whose_labels_they_all_carry_from_their_sender() {
    let two = format!(
        "{WITH_ROLLBACK}      alerts: [{{sender: prometheus, labels: {{job: payments, severity: page}}}}]\n{}",
        WITH_ROLLBACK
            .replace("version: 1\nservices:\n", "")
            .replace("payments", "billing")
            .replace(
                "      bake_minutes: 60\n",
                "      bake_minutes: 60\n      alerts: [{sender: prometheus, labels: {namespace: billing}}, {sender: grafana, labels: {app: billing}}]\n",
            )
    );
    let p = Policy::parse(&two).unwrap();
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let names = |sender: &str, l: &BTreeMap<String, String>| -> Vec<String> {
        p.alert(sender, l)
            .iter()
            .map(|s| s.name.to_string())
            .collect()
    };
    let page = labels(&[
        ("job", "payments"),
        ("severity", "page"),
        ("instance", "a:80"),
    ]);
    assert_eq!(names("prometheus", &page), ["payments"]);
    // Every label of the match, with its value; from its own sender only.
    assert!(names("prometheus", &labels(&[("job", "payments")])).is_empty());
    assert!(names("grafana", &page).is_empty());
    assert_eq!(
        names("grafana", &labels(&[("app", "billing")])),
        ["billing"]
    );
    // An alert two services' matches take names both (alarm-rollback calls it ambiguous).
    let both = labels(&[
        ("job", "payments"),
        ("severity", "page"),
        ("namespace", "billing"),
    ]);
    assert_eq!(names("prometheus", &both), ["billing", "payments"]);

    for (alerts, says) in [
        (
            "[{sender: prometheus, labels: {}}]",
            "rollback.alerts[0].labels: at least one label",
        ),
        (
            "[{sender: prometheus, labels: {job-name: x}}]",
            "a Prometheus label name",
        ),
        ("[{sender: Prometheus, labels: {job: x}}]", "alerts"),
        ("[{sender: prometheus}]", "missing field `labels`"),
    ] {
        let err = Policy::parse(&format!("{WITH_ROLLBACK}      alerts: {alerts}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{alerts}: {err}");
    }
}

#[test]
fn rollback_mistakes_are_named() {
    for (change, says) in [
        (
            (
                "deploy: payments-deploy, rollback: payments-rollback",
                "deploy: payments-deploy",
            ),
            "services.payments.projects.rollback: a rollback section needs the rollback project",
        ),
        (
            ("bake_minutes: 60", "bake_minutes: 0"),
            "services.payments.rollback.bake_minutes: 0 is not between 1 and 10080 minutes",
        ),
        (
            ("bake_minutes: 60", "bake_minutes: 60\n      cooldown: 5"),
            "unknown field `cooldown`",
        ),
        (
            ("bake_minutes: 60", "bake_minutes: 60\n      mode: yolo"),
            "unknown variant `yolo`",
        ),
        (("payments-5xx,", "' ',"), "rollback.alarms[0]"),
    ] {
        let text = WITH_ROLLBACK.replacen(change.0, change.1, 1);
        assert_ne!(text, WITH_ROLLBACK, "{change:?} changed nothing");
        let err = Policy::parse(&text).unwrap_err().to_string();
        assert!(err.contains(says), "{change:?}: {err}");
    }
    let no_section = WITH_ROLLBACK.split("    rollback:\n").next().unwrap();
    let err = Policy::parse(no_section).unwrap_err().to_string();
    assert!(
        err.contains("projects.rollback names payments-rollback"),
        "{err}"
    );
}

const TENANTS: &str = r#"
version: 1
tenants:
  tiers:
    basic:
      provision: {project: tenant-provision, timeout_minutes: 30}
      deprovision: {project: tenant-deprovision}
      retries: 1
      inputs:
        tenantName: {env: TENANT_NAME, kind: text, required: true, max_length: 64}
        email: {env: TENANT_EMAIL, kind: email}
      outputs: [TENANT_URL]
"#;

#[test]
fn tenant_tiers_parse_without_services() {
    let p = Policy::parse(TENANTS).unwrap();
    assert!(p.services.is_empty());
    let t = p.tier("basic").unwrap();
    assert_eq!(t.provision.timeout_minutes, 30);
    assert_eq!(t.deprovision.timeout_minutes, 60);
    assert_eq!(t.retries, 1);
    assert_eq!(t.inputs.len(), 2);
    assert_eq!(t.inputs[1].name, "tenantName");
    assert!(t.inputs[1].required && !t.inputs[0].required);
    assert_eq!(t.inputs[0].max_length, 128);
    assert!(p.tenant_project("tenant-deprovision"));
    assert!(!p.tenant_project("other"));
    assert!(p.tier("premium").is_none());
}

#[test]
fn tenant_mistakes_are_named() {
    for (change, says) in [
        (
            ("timeout_minutes: 30", "timeout_minutes: 1"),
            "tenants.tiers.basic.provision.timeout_minutes: 1 is not between 5 and 480",
        ),
        (("retries: 1", "retries: 9"), "tenants.tiers.basic.retries"),
        (
            ("env: TENANT_NAME", "env: EDDO_TENANT_NAME"),
            "tenants.tiers.basic.inputs.tenantName.env",
        ),
        (
            ("env: TENANT_EMAIL", "env: TENANT_NAME"),
            "TENANT_NAME is already another input's variable",
        ),
        (("tenantName:", "tier:"), "\"tier\" cannot name an input"),
        (("kind: email", "kind: url"), "unknown variant `url`"),
        (
            ("[TENANT_URL]", "[TENANT_URL, DB_PASSWORD]"),
            "tenants.tiers.basic.outputs[1]: DB_PASSWORD looks like a secret",
        ),
        (("basic:", "Basic:"), "not a tier name"),
        (("retries: 1", "retry: 1"), "unknown field `retry`"),
    ] {
        let text = TENANTS.replacen(change.0, change.1, 1);
        assert_ne!(text, TENANTS, "{change:?} changed nothing");
        let err = Policy::parse(&text).unwrap_err().to_string();
        assert!(err.contains(says), "{change:?}: {err}");
    }
    let shared = format!(
        "{}{}",
        GOOD,
        TENANTS
            .replace("version: 1\n", "")
            .replace("project: tenant-provision", "project: payments-deploy")
    );
    let err = Policy::parse(&shared).unwrap_err().to_string();
    assert!(
        err.contains("project payments-deploy is already used by service payments"),
        "{err}"
    );
}

#[test]
fn glob_matches_like_a_shell_star() {
    for (p, t, m) in [
        ("a*c", "abc", true),
        ("a*c", "ac", true),
        ("a*c", "abd", false),
        ("*", "", true),
        ("a**b", "ab", true),
        ("*-5xx", "payments-5xx", true),
        ("payments", "payments-5xx", false),
        ("a*b*c", "aXbYbZc", true),
    ] {
        assert_eq!(glob(p, t), m, "{p} vs {t}");
    }
}

#[test]
fn every_mistake_is_found_with_its_line_and_column() {
    // Three services: one with two rule mistakes, one misspelt, one good; a mistake in one does
    // not hide the others', and the good one does not count as one.
    let text = r#"version: 1
services:
  payments:
    repositories: [acme/payments]
    branches: [main]
    projects: {build: payments-build, deploy: payments-deploy}
    gate:
      require: [build]
      deadline_minutes: 0
      exceptions:
        - id: CVE-2024-1234
          reason: " "
          expires: "2027-01-31"
  search:
    repositories: [acme/search]
    branches: [main]
    projects: {build: search-build, deploy: search-deploy}
    gate:
      require: [build]
      dedline_minutes: 30
  web:
    repositories: [acme/web]
    branches: [main]
    projects: {build: web-build, deploy: web-deploy}
    gate: {require: [build], deadline_minutes: 30}
"#;
    let mistakes = Policy::check(text).unwrap_err();
    let seen: Vec<String> = mistakes.iter().map(ToString::to_string).collect();
    assert_eq!(
        seen,
        [
            "line 9, column 7: services.payments.gate.deadline_minutes: 0 is not between 1 and 1440",
            "line 12, column 11: services.payments.gate.exceptions[0].reason: CVE-2024-1234: write down the reason",
            "line 20, column 7: services.search.gate.dedline_minutes: unknown field `dedline_minutes`, expected one of `require`, `senders`, `sast_checks`, `max_findings`, `exceptions`, `deadline_minutes`, `mode`, `reruns`",
        ],
        "{seen:#?}"
    );
    // The functions' own message: every mistake, no places (a log line, not a file).
    let err = Policy::parse(text).unwrap_err().to_string();
    assert!(
        err.starts_with("policy: services.payments.gate.deadline_minutes"),
        "{err}"
    );
    assert_eq!(err.matches("; ").count(), 2, "{err}");
}

#[test]
fn a_document_that_is_not_yaml_is_one_mistake_at_its_place() {
    let mistakes = Policy::check("version: 1\nservices:\n  a: [\n").unwrap_err();
    assert_eq!(mistakes.len(), 1, "{mistakes:?}");
    assert!(mistakes[0].line.is_some() && mistakes[0].column.is_some());
    assert!(mistakes[0].path.is_empty());
}

fn contract_kind() -> SignalKind {
    SignalKind::parse("contract").unwrap()
}

#[test]
fn a_github_actions_security_check_from_any_workflow_is_the_policys_explicit_word() {
    let text = GOOD.replace(
        "      deadline_minutes: 30",
        "      deadline_minutes: 30\n      senders:\n        sast: [{check: CodeQL, app: github-actions, any_workflow: true}]",
    );
    let p = Policy::parse(&text).unwrap();
    let g = &p.service("payments").unwrap().gate;
    let seen = CheckSeen {
        name: "CodeQL",
        app: "github-actions",
        app_id: None,
        workflow: None,
        event: None,
    };
    assert!(g.check_sender(&SignalKind::Sast, &seen).is_some());
}

#[test]
fn a_service_deploys_by_codebuild_a_github_environment_or_both() {
    let p = Policy::parse(GOOD).unwrap();
    assert_eq!(
        p.service("payments").unwrap().deploys_by,
        DeploysBy::CodeBuild
    );
    let with = |by: &str, deploy: bool| {
        let mut text = GOOD.replace(
            "    image_repository: payments\n",
            &format!(
                "    image_repository: payments\n    checks: {{github: acme/payments}}\n    deploys_by: {by}\n    github_environment: production\n"
            ),
        );
        if !deploy {
            text = text.replace(", deploy: payments-deploy", "");
        }
        text
    };
    let env = Policy::parse(&with("github-environment", false)).unwrap();
    let s = env.service("payments").unwrap();
    assert_eq!(
        s.deploys_by,
        DeploysBy::GitHubEnvironment {
            environment: "production".into()
        }
    );
    assert!(!s.deploys_by.codebuild());
    assert_eq!(s.projects.deploy, None);
    let both = Policy::parse(&with("both", true)).unwrap();
    let s = both.service("payments").unwrap();
    assert!(s.deploys_by.codebuild());
    assert_eq!(s.deploys_by.environment(), Some("production"));

    for (text, says) in [
        (
            with("github-environment", true),
            "projects.deploy: payments-deploy would never be started",
        ),
        (
            with("both", false),
            "projects.deploy: the gate deploys by starting this project",
        ),
        (
            with("both", true).replace("    checks: {github: acme/payments}\n", ""),
            "checks.github: a service deployed by GitHub environment names the repository",
        ),
        (
            with("both", true).replace("    github_environment: production\n", ""),
            "github_environment: name the GitHub environment",
        ),
        (
            with("codebuild", true),
            "github_environment: only a service that deploys_by github-environment",
        ),
        (with("github", true), "unknown variant `github`"),
    ] {
        let err = Policy::parse(&text).unwrap_err().to_string();
        assert!(err.contains(says), "{says}: {err}");
    }
    // One environment, one service: GitHub takes one answer from the App.
    let twice = format!(
        "{}\n  billing:\n    repositories: [acme/payments]\n    branches: [main]\n    projects: {{build: billing-build}}\n    image_repository: billing\n    checks: {{github: acme/payments}}\n    deploys_by: github-environment\n    github_environment: production\n    gate: {{require: [build], deadline_minutes: 5}}\n",
        with("github-environment", false).trim_end()
    );
    let err = Policy::parse(&twice).unwrap_err().to_string();
    assert!(
        err.contains("environment production of acme/payments is already deployed by service"),
        "{err}"
    );
}
