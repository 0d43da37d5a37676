//! The shared crate's AWS pieces against moto: deliveries remembered once (the outbox's lease and
//! owed events) in DynamoDB, and publishing to EventBridge through rules.

use crate::harness::Local;
use std::sync::Arc;
use std::time::Duration;

use eddo::event::{DetailType, Envelope, Metadata};
use eddo::idempotency::{Claim, IdempotencyKey, MIN_RETENTION, Once};
use eddo::outbox::{DEFAULT_LEASE_SECS as LEASE_SECS, Outbox};
use eddo::publish::{OutgoingEvent, Publisher};
use eddo_local::moto::Moto;
use eddo_local::stack::Stack;
use serde_json::json;

async fn setup(prefix: &str) -> (Arc<Moto>, Stack) {
    let Local { moto, stack } = Local::start(prefix).await;
    (moto, stack)
}

/// The webhook's way of remembering deliveries, publishing as the webhook (the only principal
/// the bus lets put `eddo.webhook`).
async fn once(stack: &Stack) -> Once {
    let sdk = crate::harness::function_sdk(stack, "webhook").await;
    let publisher = Publisher::new(
        aws_sdk_eventbridge::Client::new(&sdk),
        &stack.bus,
        256 * 1024,
    );
    Once::new(
        Outbox::new(aws_sdk_dynamodb::Client::new(&sdk), &stack.table, publisher),
        MIN_RETENTION,
    )
}

fn push(n: u32) -> Vec<OutgoingEvent> {
    let env = Envelope {
        metadata: Metadata::new("corr", format!("delivery-{n}")),
        detail: json!({"n": n, "branch": "main", "repository": {"full_name": "Codertocat/Hello-World"}}),
    };
    vec![OutgoingEvent::new(DetailType::GitPush, &env).unwrap()]
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_send_and_redeliver() {
    let (_moto, stack) = setup("idem").await;
    let s = once(&stack).await;
    let key = IdempotencyKey::new("webhook#test", "delivery-1");
    let now = 1_800_000_000;
    let Claim::Acquired(lease) = s.claim(&key, &push(1), now).await.unwrap() else {
        panic!("first claim")
    };
    // While the first holds a live lease, another invocation is told it is in progress.
    assert_eq!(
        s.claim(&key, &push(1), now + 1).await.unwrap(),
        Claim::InProgress
    );
    let ids = s.outbox().send_until(&lease, &push(1), None).await.unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(
        s.claim(&key, &push(1), now + 3).await.unwrap(),
        Claim::Sent {
            event_ids: ids.clone()
        }
    );
    // Still a duplicate 23 hours later: the retention is at least a day.
    assert_eq!(
        s.claim(&key, &push(1), now + 23 * 3600).await.unwrap(),
        Claim::Sent { event_ids: ids }
    );
    // After the retention, even before DynamoDB's TTL sweeps it, the key can be claimed again.
    assert!(matches!(
        s.claim(&key, &push(1), now + 2 + MIN_RETENTION.as_secs() + 1)
            .await
            .unwrap(),
        Claim::Acquired(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_invocations_events_are_sent_by_the_next_after_its_lease() {
    let (_moto, stack) = setup("lease").await;
    let s = once(&stack).await;
    let key = IdempotencyKey::new("webhook#test", "crashed");
    let now = 1_800_000_000;
    let Claim::Acquired(_dead) = s.claim(&key, &push(2), now).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        s.claim(&key, &push(3), now + LEASE_SECS - 1).await.unwrap(),
        Claim::InProgress
    );
    // After the lease: taken over, with the events the first invocation wrote, not its own.
    let Claim::Abandoned(lease, owed) = s.claim(&key, &push(3), now + LEASE_SECS).await.unwrap()
    else {
        panic!("the lease should have lapsed")
    };
    assert_eq!(owed, push(2));
    let ids = s.outbox().send_until(&lease, &owed, None).await.unwrap();
    assert_eq!(
        s.claim(&key, &push(3), now + LEASE_SECS + 1).await.unwrap(),
        Claim::Sent { event_ids: ids }
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lease_let_go_is_taken_at_once() {
    let (_moto, stack) = setup("release").await;
    let s = once(&stack).await;
    let key = IdempotencyKey::new("webhook#test", "failed-effect");
    let Claim::Acquired(lease) = s.claim(&key, &push(4), 1000).await.unwrap() else {
        panic!()
    };
    s.outbox().let_go(&lease).await.unwrap();
    let Claim::Abandoned(taken, _) = s.claim(&key, &push(4), 1001).await.unwrap() else {
        panic!("let go: taken at once")
    };
    // Letting go of a lease someone else now holds leaves theirs alone.
    s.outbox().let_go(&lease).await.unwrap();
    assert_eq!(
        s.claim(&key, &push(4), 1002).await.unwrap(),
        Claim::InProgress
    );
    assert_ne!(taken, lease);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_three_events_all_arrive_through_the_rule() {
    let (_moto, stack) = setup("batch").await;
    // Published as the webhook, the only principal the bus lets put eddo.webhook.
    let publisher = Publisher::new(
        aws_sdk_eventbridge::Client::new(&crate::harness::function_sdk(&stack, "webhook").await),
        &stack.bus,
        256 * 1024,
    );
    let events: Vec<OutgoingEvent> = (0..23)
        .map(|n| {
            let env = Envelope {
                metadata: Metadata::new("corr", format!("cause-{n}")),
                detail: json!({"n": n, "branch": "main", "commit_sha": format!("{n:040x}"), "repository": {"full_name": "Codertocat/Hello-World"}}),
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
