//! The example tenant requests under `infra/examples/events/` match their contracts and read, under
//! the example policy, into the requests they show. (Also makes `cargo test` build the
//! `tenant-onboarding` binary, which the workspace's end-to-end tests run.)

use std::path::PathBuf;

use eddo::policy::Policy;
use eddo_tenant_onboarding::request::{Action, Read, Shape, read};
use eddo_tenant_onboarding::{Generation, RequestSources, Sbt};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

#[test]
fn each_example_request_matches_its_contract_and_reads() {
    let policy =
        Policy::parse(&std::fs::read_to_string(root().join("infra/policy/example.yaml")).unwrap())
            .unwrap();
    let current = Sbt::with_defaults(Generation::Current);
    let legacy = Sbt::with_defaults(Generation::Legacy);
    for (file, contract, sbt, action, tenant, values) in [
        (
            "tenant-onboarding-requested.json",
            Some("tenant-onboarding-requested.schema.json"),
            None,
            Action::Onboard,
            "acme",
            2,
        ),
        (
            "tenant-offboarding-requested.json",
            Some("tenant-offboarding-requested.schema.json"),
            None,
            Action::Offboard,
            "acme",
            0,
        ),
        (
            "sbt-onboarding-request.json",
            Some("sbt-aws/current/onboarding-request.schema.json"),
            Some(&current),
            Action::Onboard,
            "e6878e03-ae2c-43ed-a863-08314487318b",
            2,
        ),
        (
            "sbt-offboarding-request.json",
            Some("sbt-aws/current/offboarding-request.schema.json"),
            Some(&current),
            Action::Offboard,
            "e6878e03-ae2c-43ed-a863-08314487318b",
            0,
        ),
        (
            "sbt-legacy-onboarding-request.json",
            Some("sbt-aws/legacy/onboarding-request.schema.json"),
            Some(&legacy),
            Action::Onboard,
            "e6878e03-ae2c-43ed-a863-08314487318b",
            2,
        ),
        (
            "sbt-legacy-offboarding-request.json",
            Some("sbt-aws/legacy/offboarding-request.schema.json"),
            Some(&legacy),
            Action::Offboard,
            "e6878e03-ae2c-43ed-a863-08314487318b",
            0,
        ),
    ] {
        let event = load(&format!("infra/examples/events/{file}"));
        if let Some(schema) = contract {
            let schema = load(&format!("infra/schemas/contracts/{schema}"));
            let v = jsonschema::validator_for(&schema).unwrap();
            // eddo's contracts describe the detail; sbt-aws's the whole event (its names).
            let checked = if sbt.is_some() {
                &event
            } else {
                &event["detail"]
            };
            let errors: Vec<String> = v.iter_errors(checked).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{file}: {errors:?}");
        }
        // The example control plane's source, as the template's TenantRequestSources names it.
        let sources = RequestSources::of(["com.example.control-plane"]);
        if sbt.is_none() {
            assert!(
                matches!(
                    read(&event, &policy, &RequestSources::default(), None),
                    Read::NotARequest(why) if why.contains("not a source TenantRequestSources lists")
                ),
                "{file}: from a source nobody listed"
            );
        }
        // The other generation's control plane does not take it.
        if let Some(sbt) = sbt {
            let other = if sbt.generation == Generation::Current {
                &legacy
            } else {
                &current
            };
            assert!(
                matches!(
                    read(&event, &policy, &sources, Some(other)),
                    Read::NotARequest(_)
                ),
                "{file}"
            );
        }
        let Read::Request(r) = read(&event, &policy, &sources, sbt) else {
            panic!("{file} does not read as a request")
        };
        assert_eq!(r.action, action, "{file}");
        assert_eq!(r.tenant.as_str(), tenant, "{file}");
        assert_eq!(r.values.len(), values, "{file}");
        assert_eq!(
            matches!(r.shape, Shape::Sbt { .. }),
            sbt.is_some(),
            "{file}"
        );
    }
}
