//! The shared crate's AWS pieces against moto: idempotency records in DynamoDB and publishing to
//! EventBridge through rules.

use std::time::Duration;

use eddo::event::{DetailType, Envelope, Metadata};
use eddo::idempotency::{Claim, IdempotencyKey, IdempotencyStore, MIN_RETENTION};
use eddo::publish::{OutgoingEvent, Publisher};
use eddo_local::moto::Moto;
use eddo_local::stack::Stack;
use serde_json::json;

async fn setup(prefix: &str) -> (Moto, Stack) {
    let moto = Moto::start().expect("moto server (run `make setup`)");
    let stack = Stack::provision(&moto.sdk_config().await, prefix)
        .await
        .expect("provision");
    (moto, stack)
}

fn store(stack: &Stack, lease_secs: u64) -> IdempotencyStore {
    IdempotencyStore::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        &stack.table,
        Duration::from_secs(lease_secs),
        MIN_RETENTION,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_complete_and_redeliver() {
    let (_moto, stack) = setup("idem").await;
    let s = store(&stack, 60);
    let key = IdempotencyKey::new("test", "delivery-1");
    let now = 1_800_000_000;
    let Claim::Acquired(lease) = s.claim(&key, now).await.unwrap() else {
        panic!("first claim")
    };
    // While the first holds a live lease, another invocation is told it is in progress.
    assert_eq!(s.claim(&key, now + 1).await.unwrap(), Claim::InProgress);
    s.complete(&lease, Some("event-1"), now + 2).await.unwrap();
    assert_eq!(
        s.claim(&key, now + 3).await.unwrap(),
        Claim::Completed {
            result: Some("event-1".into())
        }
    );
    // Still a duplicate 23 hours later: the retention is at least a day.
    assert_eq!(
        s.claim(&key, now + 23 * 3600).await.unwrap(),
        Claim::Completed {
            result: Some("event-1".into())
        }
    );
    // After the retention, even before DynamoDB's TTL sweeps it, the key can be claimed again.
    assert!(matches!(
        s.claim(&key, now + 2 + MIN_RETENTION.as_secs() + 1)
            .await
            .unwrap(),
        Claim::Acquired(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_invocations_claim_lapses_after_its_lease() {
    let (_moto, stack) = setup("lease").await;
    let s = store(&stack, 30);
    let key = IdempotencyKey::new("test", "crashed");
    let now = 1_800_000_000;
    let Claim::Acquired(dead) = s.claim(&key, now).await.unwrap() else {
        panic!()
    };
    assert_eq!(s.claim(&key, now + 29).await.unwrap(), Claim::InProgress);
    let Claim::Acquired(retry) = s.claim(&key, now + 31).await.unwrap() else {
        panic!("lease should have lapsed")
    };
    // The dead invocation's late completion does not overwrite the new owner's claim.
    assert!(s.complete(&dead, Some("stale"), now + 32).await.is_err());
    s.complete(&retry, Some("fresh"), now + 33).await.unwrap();
    assert_eq!(
        s.claim(&key, now + 34).await.unwrap(),
        Claim::Completed {
            result: Some("fresh".into())
        }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_released_claim_can_be_taken_at_once() {
    let (_moto, stack) = setup("release").await;
    let s = store(&stack, 60);
    let key = IdempotencyKey::new("test", "failed-effect");
    let Claim::Acquired(lease) = s.claim(&key, 1000).await.unwrap() else {
        panic!()
    };
    s.release(&lease).await.unwrap();
    assert!(matches!(
        s.claim(&key, 1001).await.unwrap(),
        Claim::Acquired(_)
    ));
    // Releasing a claim someone else now holds leaves theirs alone.
    s.release(&lease).await.unwrap();
    assert_eq!(s.claim(&key, 1002).await.unwrap(), Claim::InProgress);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_three_events_all_arrive_through_the_rule() {
    let (_moto, stack) = setup("batch").await;
    // Published as the webhook, the only principal the bus lets put eddo.webhook.
    let publisher = Publisher::new(
        aws_sdk_eventbridge::Client::new(&eddo_tests::function_sdk(&stack, "webhook").await),
        &stack.bus,
        256 * 1024,
    );
    let events: Vec<OutgoingEvent> = (0..23)
        .map(|n| {
            let env = Envelope {
                metadata: Metadata::new("corr", format!("cause-{n}")),
                detail: json!({"n": n, "branch": "main", "repository": {"full_name": "Codertocat/Hello-World"}}),
            };
            OutgoingEvent::new(DetailType::GitPush, &env).unwrap()
        })
        .collect();
    let out = publisher.publish(&events).await.unwrap();
    assert_eq!(out.event_ids.len(), 23);
    assert!(out.event_ids.iter().all(|id| !id.is_empty()));
    let mut received = Vec::new();
    while received.len() < 23 {
        let got = stack
            .drain(&stack.matched["PushRule"], Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!got.is_empty(), "only {} of 23 arrived", received.len());
        received.extend(got);
    }
    let mut ns: Vec<u64> = received
        .iter()
        .map(|e| e["detail"]["n"].as_u64().unwrap())
        .collect();
    ns.sort();
    assert_eq!(ns, (0..23).collect::<Vec<_>>());
}
