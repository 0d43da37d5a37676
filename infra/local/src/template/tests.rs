use serde_json::json;

use super::*;

/// A translated template: `resources` and `conditions` as plain CloudFormation, with two
/// parameters (`Name`, a string, and `Names`, a list).
fn template(conditions: Json, resources: Json) -> Template {
    Template::from_translated(&json!({
        "template": {
            "Parameters": {
                "Name": {"Type": "String"},
                "Names": {"Type": "CommaDelimitedList"},
            },
            "Conditions": conditions,
            "Resources": resources,
        },
        "parameters": {"Name": "eddo", "Names": "a,b"},
    }))
    .unwrap()
}

/// Resolves the `Value` property of resource `Q` (a queue), with `Bus` provisioned.
fn resolve(value: Json) -> Result<Json, LocalError> {
    let t = template(
        json!({"Yes": {"Fn::Equals": ["a", "a"]}, "No": {"Fn::Equals": ["a", "b"]}}),
        json!({
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "b"}},
            "Gone": {"Type": "AWS::SQS::Queue", "Condition": "No"},
            "Q": {"Type": "AWS::SQS::Queue", "Properties": {"Value": value}},
        }),
    )
    .deployed()?;
    let mut names = Names::new(&t, "test");
    names.set_ref("Bus", "eddo-bus");
    names.set_attr(
        "Bus",
        "Arn",
        "arn:aws:events:us-east-1:123456789012:event-bus/eddo-bus",
    );
    property(&names, "Q", &t.resources["Q"], "Value")
}

fn refused(value: Json) -> String {
    match resolve(value.clone()) {
        Ok(v) => panic!("{value} resolved to {v}; CloudFormation refuses it"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn values_resolve_as_cloudformation_resolves_them() {
    for (value, expected) in [
        (json!({"Ref": "Name"}), json!("eddo")),
        (json!({"Ref": "Names"}), json!(["a", "b"])),
        (json!({"Fn::Join": [",", {"Ref": "Names"}]}), json!("a,b")),
        (
            json!({"Fn::Sub": "${AWS::Region}/${Name}/${Bus.Arn}/${!Literal}"}),
            json!(
                "us-east-1/eddo/arn:aws:events:us-east-1:123456789012:event-bus/eddo-bus/${Literal}"
            ),
        ),
        (
            json!({"Fn::Sub": ["x-${V}", {"V": {"Fn::Join": ["-", ["a", {"Ref": "Name"}]]}}]}),
            json!("x-a-eddo"),
        ),
        (
            json!({"Fn::Select": [1, {"Fn::Split": [",", "p,q"]}]}),
            json!("q"),
        ),
        (json!({"Fn::If": ["Yes", "y", {"Ref": "Gone"}]}), json!("y")),
        (json!({"Fn::Base64": "hi"}), json!("aGk=")),
        (
            json!({"A": {"Fn::If": ["No", "x", {"Ref": "AWS::NoValue"}]}, "B": 1}),
            json!({"B": 1}),
        ),
        (json!({"Fn::GetAtt": "Bus.Name"}).clone(), Json::Null),
    ] {
        if expected.is_null() {
            continue;
        }
        assert_eq!(resolve(value.clone()).unwrap(), expected, "{value}");
    }
}

#[test]
fn a_function_in_a_plain_string_argument_is_refused() {
    // Today's template had this in three statements: CloudFormation refuses every deploy.
    let err = refused(json!({"Fn::Join": [{"Fn::Sub": ",${AWS::Region}:"}, ["a", "b"]]}));
    assert!(err.contains("resource Q, Properties.Value"), "{err}");
    assert!(
        err.contains(
            "Fn::Join's delimiter must be a plain string; CloudFormation allows no function there"
        ),
        "{err}"
    );
    let err = refused(json!({"Fn::Split": [{"Ref": "Name"}, "a,b"]}));
    assert!(
        err.contains("Fn::Split's delimiter must be a plain string"),
        "{err}"
    );
    let err = refused(json!({"Fn::Sub": [{"Ref": "Name"}, {}]}));
    assert!(
        err.contains("Fn::Sub's string must be a plain string"),
        "{err}"
    );
    let err = refused(json!({"Fn::GetAtt": [{"Ref": "Name"}, "Arn"]}));
    assert!(
        err.contains("Fn::GetAtt's logical name must be a plain string"),
        "{err}"
    );
}

#[test]
fn only_the_documented_functions_may_appear_inside_another() {
    // Fn::Split is not among Fn::Sub's variable functions.
    let err = refused(json!({"Fn::Sub": ["${V}", {"V": {"Fn::Split": [",", "a"]}}]}));
    assert!(
        err.contains("Fn::Split is not allowed here; CloudFormation allows only Fn::Base64"),
        "{err}"
    );
    // Fn::Select's list takes Fn::Split, Ref, ... but not Fn::Join.
    let err = refused(json!({"Fn::Select": [0, {"Fn::Join": [",", ["a"]]}]}));
    assert!(err.contains("Fn::Join is not allowed here"), "{err}");
    // Condition functions belong in the Conditions section.
    let err = refused(json!({"Fn::Equals": ["a", "a"]}));
    assert!(
        err.contains("Fn::Equals can be used only in the Conditions section"),
        "{err}"
    );
    let err = refused(json!({"Fn::Length": [1, 2]}));
    assert!(
        err.contains("Fn::Length needs the AWS::LanguageExtensions transform"),
        "{err}"
    );
}

#[test]
fn references_must_name_what_exists() {
    let err = refused(json!({"Fn::GetAtt": ["Bus", "Url"]}));
    assert!(
        err.contains("Fn::GetAtt Bus.Url: AWS::Events::EventBus has no attribute Url"),
        "{err}"
    );
    let err = refused(json!({"Fn::GetAtt": ["Nothing", "Arn"]}));
    assert!(err.contains("no resource Nothing in the template"), "{err}");
    let err = refused(json!({"Ref": "Nothing"}));
    assert!(
        err.contains("Ref Nothing: no parameter, resource or pseudo parameter"),
        "{err}"
    );
    // A resource whose condition is false does not exist, except in the branch not taken.
    let err = refused(json!({"Ref": "Gone"}));
    assert!(
        err.contains("Ref Gone: the resource is not created"),
        "{err}"
    );
    let err = refused(json!({"Fn::Sub": "${Undeclared}"}));
    assert!(err.contains("Ref Undeclared"), "{err}");
    let err = refused(json!({"Fn::Sub": "${Names}"}));
    assert!(err.contains("Fn::Sub ${Names} is a list"), "{err}");
    let err = refused(json!({"Fn::If": ["Maybe", "a", "b"]}));
    assert!(err.contains("no condition named Maybe"), "{err}");
    let err = refused(json!({"Fn::Select": [2, {"Ref": "Names"}]}));
    assert!(
        err.contains("index 2 is out of range of a list of 2"),
        "{err}"
    );
    let err = refused(json!({"Fn::Join": [",", [{"Ref": "Names"}]]}));
    assert!(err.contains("Fn::Join joins strings; item 0 is"), "{err}");
}

#[test]
fn conditions_are_checked_as_cloudformation_checks_them() {
    let deploy = |conditions: Json| {
        template(conditions, json!({"Q": {"Type": "AWS::SQS::Queue"}}))
            .deployed()
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        deploy(json!({"A": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Name"}, ""]}]}})),
        None
    );
    // Unused, but malformed: CloudFormation refuses the template all the same.
    let err =
        deploy(json!({"A": {"Fn::Equals": [{"Fn::Join": ["", {"Ref": "Names"}]}, ""]}})).unwrap();
    assert!(
        err.contains("Fn::Join cannot be used inside a condition function"),
        "{err}"
    );
    let err = deploy(json!({"A": {"Fn::Equals": [{"Ref": "Q"}, ""]}})).unwrap();
    assert!(
        err.contains("a condition can refer to parameters only"),
        "{err}"
    );
    let err = deploy(json!({"A": {"Fn::And": [{"Condition": "B"}]}, "B": {"Fn::Equals": [1, 1]}}))
        .unwrap();
    assert!(
        err.contains("Fn::And takes a list of 2 to 10 conditions"),
        "{err}"
    );
    let err = deploy(json!({"A": {"Condition": "A"}})).unwrap();
    assert!(err.contains("refers to itself"), "{err}");
    let err = template(
        json!({}),
        json!({"Q": {"Type": "AWS::SQS::Queue", "Condition": "Missing"}}),
    )
    .deployed()
    .unwrap_err()
    .to_string();
    assert!(err.contains("resource Q, Condition Missing"), "{err}");
}

/// The project's template through the real translation (the virtualenv's SAM translator), with
/// the parameter choices a user has: it must resolve everywhere.
fn project(overrides: &[(&str, &str)]) -> Result<(Template, Names), LocalError> {
    let t = Template::load(
        &crate::moto::project_root().join("template.yaml"),
        overrides,
    )?
    .deployed()?;
    let mut names = Names::new(&t, "eddo");
    for (id, _) in t.resources.iter() {
        names.set_ref(id, format!("local-{id}"));
        names.set_placeholders(id, &format!("local-{id}"));
    }
    for (id, r) in &t.resources {
        names.resolve(&r.properties, &format!("resource {id}, Properties"))?;
    }
    Ok((t, names))
}

#[test]
fn the_project_template_resolves_for_every_choice_of_parameters() {
    let local = crate::stack::local_parameters().unwrap();
    let demo: Vec<(&str, &str)> = local
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for overrides in [
        &[][..],
        &demo[..],
        &[
            ("TrackedRepositories", ""),
            ("TrackedOwners", "acme,acme/platform"),
        ][..],
    ] {
        let (t, names) = project(overrides).unwrap_or_else(|e| panic!("{overrides:?}: {e}"));
        let fns = functions(&t, &names).unwrap();
        assert_eq!(fns.len(), 4, "{overrides:?}");
        let webhook = fns.iter().find(|f| f.binary == "webhook").unwrap();
        assert_eq!(webhook.timeout_secs, 9);
        assert_eq!(webhook.memory_mb, 128);
        // The webhook has no EventInvokeConfig: Lambda's two retries.
        assert_eq!(webhook.attempts, 3);
        let env: HashMap<_, _> = webhook.env.iter().cloned().collect();
        assert_eq!(env["EDDO_EVENT_BUS_NAME"], "local-EventBus");
        assert_eq!(env["EDDO_WEBHOOK_SECRET_ARN"], "local-WebhookSecret");
        assert_eq!(env["EDDO_IDEMPOTENCY_HOURS"], "72");
    }
    // No grant per project: the roles reach projects by their eddo:role tag, whatever the policy.
    let (t, _) = project(&demo).unwrap();
    assert_eq!(t.of_type("AWS::IAM::RolePolicy").count(), 0);
}

#[test]
fn conditions_decide_which_rules_and_targets_exist() {
    let rules_of = |overrides: &[(&str, &str)]| {
        let (t, names) = project(overrides).unwrap();
        rules(&t, &names, &HashMap::new(), "default").unwrap()
    };
    // Deployed with the defaults, no project is named: no push rule.
    assert!(rules_of(&[]).iter().all(|r| r.name != "PushRule"));

    let only_build = rules_of(&[("BuildProjectName", "app-build")]);
    let push = only_build.iter().find(|r| r.name == "PushRule").unwrap();
    assert_eq!(
        push.targets
            .iter()
            .map(|t| t.kind.clone())
            .collect::<Vec<_>>(),
        vec![TargetKind::CodeBuild("app-build".into())],
        "the SAST target is left out with !Ref AWS::NoValue"
    );
    assert_eq!(
        push.targets[0].role.as_deref(),
        Some("local-PushRuleRole-Arn")
    );
    let pattern: Json = serde_json::from_str(&push.pattern).unwrap();
    assert_eq!(pattern["detail"]["branch"], json!(["main"]));

    let both = rules_of(&[
        ("BuildProjectName", "app-build"),
        ("SastProjectName", "app-sast"),
        ("TrackedBranches", "main,release"),
    ]);
    let push = both.iter().find(|r| r.name == "PushRule").unwrap();
    assert_eq!(push.targets.len(), 2);
    let pattern: Json = serde_json::from_str(&push.pattern).unwrap();
    assert_eq!(pattern["detail"]["branch"], json!(["main", "release"]));
}

#[test]
fn the_translation_refuses_what_cloudformation_refuses() {
    let err = |text: &str, overrides: &[(&str, &str)]| {
        Template::translate(text, overrides)
            .unwrap_err()
            .to_string()
    };
    let path = crate::moto::project_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let e = err(&text, &[("LogLevel", "LOUD")]);
    assert!(
        e.contains("parameter LogLevel ('LOUD'): not one of AllowedValues"),
        "{e}"
    );
    let e = err(&text, &[("NoSuchParameter", "x")]);
    assert!(e.contains("['NoSuchParameter'] do not exist"), "{e}");
    let e = err(&text, &[("BuildProjectName", "has space")]);
    assert!(e.contains("does not match AllowedPattern"), "{e}");
    // A CDEvents sink over plain HTTP (EventBridge takes HTTPS only), or without its token.
    let e = err(&text, &[("CDEventsSinkUrl", "http://events.example.com/")]);
    assert!(e.contains("does not match AllowedPattern"), "{e}");
    let e = err(
        &text,
        &[("CDEventsSinkUrl", "https://events.example.com/cdevents")],
    );
    assert!(e.contains("CDEventsSinkUrl needs CDEventsSinkToken"), "{e}");
    let foreach = "Parameters: {L: {Type: CommaDelimitedList, Default: a}}\nResources:\n  Fn::ForEach::Q:\n    - X\n    - !Ref L\n    - Q${X}:\n        Type: AWS::SQS::Queue\n";
    let e = err(foreach, &[]);
    assert!(
        e.contains("Fn::ForEach needs the AWS::LanguageExtensions transform"),
        "{e}"
    );
    let e = err(
        &format!(
            "Transform: AWS::LanguageExtensions\n{}",
            foreach.replace("Q${X}", "Queue")
        ),
        &[],
    );
    assert!(e.contains("must contain ${X} or &{X}"), "{e}");
    let e = err(
        "Resources: {Q: {Type: AWS::SQS::Queue, Properties: {N: !Length [1]}}}",
        &[],
    );
    assert!(
        e.contains("Fn::Length is a language extension the local stack does not run"),
        "{e}"
    );
}

#[test]
fn reserved_concurrency_and_a_kms_key_are_options() {
    let statements = |t: &Template, names: &Names, role: &str| -> Vec<Json> {
        let r = &t.resources[role];
        let policies = property(names, role, r, "Policies").unwrap();
        policies
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
            .collect()
    };
    let sids = |statements: &[Json]| -> Vec<String> {
        statements
            .iter()
            .filter_map(|s| s["Sid"].as_str().map(str::to_string))
            .collect()
    };
    let (t, names) = project(&[]).unwrap();
    let webhook = &t.resources["WebhookFunction"];
    assert_eq!(
        property(
            &names,
            "WebhookFunction",
            webhook,
            "ReservedConcurrentExecutions"
        )
        .unwrap(),
        json!("20"),
        "reserved by default"
    );
    assert!(
        !sids(&statements(&t, &names, "WebhookFunctionRole"))
            .contains(&"DecryptTheWebhookSecret".into())
    );

    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let (t, names) = project(&[("KmsKeyArn", key), ("WebhookReservedConcurrency", "0")]).unwrap();
    let webhook = &t.resources["WebhookFunction"];
    assert_eq!(
        property(
            &names,
            "WebhookFunction",
            webhook,
            "ReservedConcurrentExecutions"
        )
        .unwrap(),
        Json::Null,
        "0 reserves nothing"
    );
    let secret = &t.resources["WebhookSecret"];
    assert_eq!(
        property(&names, "WebhookSecret", secret, "KmsKeyId").unwrap(),
        json!(key)
    );
    let decrypt = statements(&t, &names, "WebhookFunctionRole")
        .into_iter()
        .find(|s| s["Sid"] == "DecryptTheWebhookSecret")
        .expect("kms:Decrypt for the secret");
    assert_eq!(decrypt["Resource"], json!(key));
    assert_eq!(
        decrypt["Condition"]["StringEquals"]["kms:ViaService"],
        json!("secretsmanager.us-east-1.amazonaws.com")
    );
    for role in [
        "ScanGateFunctionRole",
        "AlarmRollbackFunctionRole",
        "TenantOnboardingFunctionRole",
    ] {
        let decrypt = statements(&t, &names, role)
            .into_iter()
            .find(|s| s["Sid"] == "DecryptThePolicy")
            .unwrap_or_else(|| panic!("{role}: kms:Decrypt for a SecureString policy"));
        assert_eq!(
            decrypt["Condition"]["StringEquals"]["kms:ViaService"],
            json!("ssm.us-east-1.amazonaws.com")
        );
    }
}
