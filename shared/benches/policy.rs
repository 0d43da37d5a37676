//! The policy's cost to a function: the CPU time of a reload (parse and check the example
//! policy, what a new version costs once per environment), the time of an event's cached read
//! (every event between two reads), and how many GetParameter calls 1,000 events make at the
//! default TTL, by how fast events come to one environment. `make bench` runs it; BENCHMARKS.md
//! records the figures.

// The one unsafe code in the workspace: a counting global allocator, in this benchmark only, to
// measure what a parsed policy holds.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use criterion::{Criterion, criterion_group, criterion_main};
use eddo::policy::Policy;
use eddo::policy::live::{DEFAULT_TTL_SECS, Live, Policies};

/// The heap in use, counted: what a parsed policy holds is the difference it makes.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the same layout, passed on to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: a pointer the system allocator gave for this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/policy/example.yaml"
    ))
    .unwrap()
}

/// Tenths of a second since the start of a simulated run.
static TENTHS: AtomicU64 = AtomicU64::new(0);

fn clock() -> u64 {
    1_000_000 + TENTHS.load(Ordering::SeqCst) / 10
}

/// A cache over an SSM that answers every GetParameter with the example at version 1.
fn live(text: &str) -> Policies {
    let rule = mock!(aws_sdk_ssm::Client::get_parameter)
        .match_requests(|_| true)
        .then_output({
            let text = text.to_string();
            move || {
                GetParameterOutput::builder()
                    .parameter(Parameter::builder().value(&text).version(1).build())
                    .build()
            }
        });
    let ssm = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&rule]);
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    Policies::live(
        Live::new(
            &sdk,
            &eddo::policy::PolicyStore::Parameter("/eddo/policy".into()),
            Duration::from_secs(DEFAULT_TTL_SECS),
        )
        .with_ssm(ssm)
        .with_clock(clock),
    )
}

/// GetParameter calls for 1,000 events to one environment, `per_second` events a second.
fn reads_per_thousand(text: &str, per_second: f64, rt: &tokio::runtime::Runtime) -> u64 {
    TENTHS.store(0, Ordering::SeqCst);
    let policies = live(text);
    for n in 0..1000u64 {
        TENTHS.store((n as f64 * 10.0 / per_second) as u64, Ordering::SeqCst);
        rt.block_on(policies.current()).unwrap();
    }
    policies.reads()
}

fn bench(c: &mut Criterion) {
    let text = example();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("GetParameter calls per 1,000 events to one environment, TTL {DEFAULT_TTL_SECS} s:");
    for rate in [0.1, 1.0, 10.0, 100.0] {
        println!(
            "  {rate} event(s)/s: {}",
            reads_per_thousand(&text, rate, &rt)
        );
    }
    c.bench_function("policy reload: parse and check example.yaml", |b| {
        b.iter(|| Policy::check(black_box(&text)).unwrap())
    });
    // A platform's policy: the example's service 1, 100 and 1,000 times over. A reload parses,
    // checks and indexes it once per version; each event's lookups then go through the index.
    println!("policy of N services: bytes, heap held once parsed and indexed");
    for n in [1usize, 100, 1000] {
        let doc = eddo::policy::with_copies_of(&text, "hello-world", n).unwrap();
        let before = IN_USE.load(Ordering::Relaxed);
        let parsed = Policy::check(&doc).unwrap();
        let held = IN_USE.load(Ordering::Relaxed).saturating_sub(before);
        println!("  {n} service(s): {} bytes, {held} bytes held", doc.len());
        let mut group = c.benchmark_group("policy reload of N services");
        group.sample_size(if n >= 1000 { 10 } else { 50 });
        group.bench_function(format!("{n}"), |b| {
            b.iter(|| Policy::check(black_box(&doc)).unwrap())
        });
        group.finish();
        let last = format!("svc-{:04}", n - 1);
        let project = format!("{last}-deploy");
        let alarm = format!("{last}-5xx");
        c.bench_function(
            &format!("lookups at {n} services: project, repository, alarm"),
            |b| {
                b.iter(|| {
                    let a = parsed.project(black_box(&project)).is_some();
                    let r = parsed
                        .repository(black_box("eddo-example/svc-0000"))
                        .count();
                    let l = parsed.alarm(black_box(&alarm), None).count();
                    (a, r, l)
                })
            },
        );
    }
    let policies = live(&text);
    TENTHS.store(0, Ordering::SeqCst);
    rt.block_on(policies.current()).unwrap();
    c.bench_function("policy read of an event within the TTL (cached)", |b| {
        b.iter(|| rt.block_on(policies.current()).unwrap())
    });
    assert_eq!(policies.reads(), 1, "no read within the TTL");
}

criterion_group!(benches, bench);
criterion_main!(benches);
