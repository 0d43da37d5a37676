//! The bench runner's Markdown: each function's section, and the summary of every function's
//! cold start beside the bare function's and the SDK floor's.

use std::fmt::Write as _;
use std::time::Duration;

use super::{
    ColdStarts, Figures, MEMORY_MB, PRICE_PER_GB_SECOND, PRICE_PER_MILLION_REQUESTS, Sample,
    median, ms, spread,
};

/// Goals of the cold-start summary: init, and first response less the AWS wait, over the bare
/// function's (medians).
pub const INIT_RATIO_GOAL: f64 = 1.5;
pub const FIRST_RESPONSE_RATIO_GOAL: f64 = 2.0;

/// One table of every measured function's cold start beside the bare function's, measured in
/// the same run (each function's cold starts alternating with the bare one's).
pub fn cold_start_summary(all: &[Figures]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| cold start, median | init | bare function's init | init ratio (goal ≤ {INIT_RATIO_GOAL}x) | SDK floor's init | init over the floor | first response less the AWS wait | bare function's | first-response ratio (goal ≤ {FIRST_RESPONSE_RATIO_GOAL}x) | SDK floor's | first response over the floor | AWS wait before the first response |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for f in all {
        let (Some(bare), Some(floor)) = (&f.baseline, &f.floor) else {
            continue;
        };
        let Some((init, first)) = f.ratios() else {
            continue;
        };
        let mark = |ratio: f64, goal: f64| if ratio <= goal { "met" } else { "over" };
        let (init_ms, first_ms) = (
            median(&f.cold.init_ms),
            median(&f.cold.first_response_own_ms()),
        );
        let (floor_init, floor_first) = (
            median(&floor.init_ms),
            median(&floor.first_response_own_ms()),
        );
        let _ = writeln!(
            out,
            "| {} | {init_ms:.1} ms | {:.1} ms | {init:.2}x ({}) | {floor_init:.1} ms | {:.2}x | {first_ms:.1} ms | {:.1} ms | {first:.2}x ({}) | {floor_first:.1} ms | {:.2}x | {:.1} ms ({} calls) |",
            f.name,
            median(&bare.init_ms),
            mark(init, INIT_RATIO_GOAL),
            init_ms / floor_init,
            median(&bare.first_response_own_ms()),
            mark(first, FIRST_RESPONSE_RATIO_GOAL),
            first_ms / floor_first,
            median(&f.cold.first_response_aws_ms),
            f.cold_operations.len(),
        );
    }
    out
}

impl Figures {
    /// The cold-start table: this function beside the bare one, when it was measured.
    fn cold_table(&self) -> String {
        let mut out = String::new();
        let c = &self.cold;
        let bare = self.baseline.as_ref();
        let _ = writeln!(
            out,
            "| cold start ({} fresh environments{}) | min / median / max | bare `lambda_runtime` function | ratio of medians | SDK floor | ratio of medians |\n|---|---|---|---|---|---|",
            c.init_ms.len(),
            if bare.is_some() {
                ", each followed by one of the bare function's and one of the SDK floor's"
            } else {
                ""
            }
        );
        let floor = self.floor.as_ref();
        let row =
            |out: &mut String, what: &str, mine: &[f64], f: Option<fn(&ColdStarts) -> Vec<f64>>| {
                let _ = write!(out, "| {what} | {} ms |", spread(mine, 1));
                for other in [bare, floor] {
                    match (other, f) {
                        (Some(other), Some(f)) => {
                            let theirs = f(other);
                            let _ = write!(
                                out,
                                " {} ms | {:.2}x |",
                                spread(&theirs, 1),
                                median(mine) / median(&theirs)
                            );
                        }
                        _ => out.push_str(" | |"),
                    }
                }
                out.push('\n');
            };
        row(
            &mut out,
            "process start → first `GET next` (init)",
            &c.init_ms,
            Some(|c| c.init_ms.clone()),
        );
        row(
            &mut out,
            &format!(
                "of which waiting on AWS ({} calls at init)",
                self.init_calls
            ),
            &c.init_aws_ms,
            None,
        );
        row(
            &mut out,
            "process start → first response (init + first event)",
            &c.first_response_ms,
            Some(|c| c.first_response_ms.clone()),
        );
        row(
            &mut out,
            "of which waiting on AWS (init's calls and the first event's)",
            &c.first_response_aws_ms,
            None,
        );
        row(
            &mut out,
            "first response less the AWS wait",
            &c.first_response_own_ms(),
            Some(ColdStarts::first_response_own_ms),
        );
        out.push('\n');
        out
    }

    /// Median init and first response (less the AWS wait) over the bare function's, when it
    /// was measured.
    pub fn ratios(&self) -> Option<(f64, f64)> {
        let bare = self.baseline.as_ref()?;
        Some((
            median(&self.cold.init_ms) / median(&bare.init_ms),
            median(&self.cold.first_response_own_ms()) / median(&bare.first_response_own_ms()),
        ))
    }

    /// A Markdown section with every figure.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "### {}\n\n{}\n\nAWS calls of a warm invocation: {}.\n",
            self.name,
            self.events,
            if self.operations.is_empty() {
                "none".to_string()
            } else {
                self.operations
                    .iter()
                    .map(|o| format!("`{}`", o.rsplit('.').next().unwrap_or(o)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
        out.push_str(&self.cold_table());
        let _ = writeln!(
            out,
            "| warm, {} invocations in {} rounds ({:.1} AWS calls each) | p50 | p99 | p99 per round, min / median / max |\n|---|---|---|---|",
            self.invocations(),
            self.rounds.len(),
            self.calls_per_invocation()
        );
        for (what, f) in [
            (
                "eddo's own time (handler, SDK, runtime client)",
                Sample::own as fn(&Sample) -> Duration,
            ),
            ("waiting on AWS (moto through the relay)", |s: &Sample| {
                s.aws
            }),
            ("invocation duration", |s: &Sample| s.total),
            (
                "eddo's own time per AWS call (own time ÷ calls)",
                Sample::own_per_call,
            ),
        ] {
            let (p50, _) = self.percentile(50.0, f);
            let (p99, rounds) = self.percentile(99.0, f);
            let _ = writeln!(
                out,
                "| {what} | {p50:.3} ms | {p99:.3} ms | {} ms |",
                spread(&rounds, 3)
            );
        }
        let cpu: Vec<f64> = self
            .rounds
            .iter()
            .zip(&self.cpu_per_round)
            .map(|(r, cpu)| ms(*cpu) / r.len().max(1) as f64)
            .collect();
        let _ = writeln!(
            out,
            "| CPU time per invocation (the process's, each round's mean) | | | {} ms |",
            spread(&cpu, 3)
        );
        let _ = writeln!(
            out,
            "\n| resident memory (VmRSS) | after the first round | after {} invocations | after each round |\n|---|---|---|---|\n| | {:.1} MiB | {:.1} MiB | {} MiB |\n",
            self.invocations(),
            self.rss_per_round_kib.first().copied().unwrap_or_default() as f64 / 1024.0,
            self.rss_per_round_kib.last().copied().unwrap_or_default() as f64 / 1024.0,
            self.rss_per_round_kib
                .iter()
                .map(|k| format!("{:.1}", *k as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let measured = self.gb_seconds_per_million(|s| s.total);
        let own = self.gb_seconds_per_million(Sample::own);
        let init_gbs = median(&self.cold.init_ms) / 1000.0 * MEMORY_MB / 1024.0;
        let _ = writeln!(
            out,
            "| per million events, 128 MB arm64 | GB-s | cost |\n|---|---|---|\n\
             | billed durations as measured here | {measured:.0} | ${:.4} + ${PRICE_PER_MILLION_REQUESTS:.2} requests |\n\
             | eddo's own time only (AWS answering instantly) | {own:.0} | ${:.4} + ${PRICE_PER_MILLION_REQUESTS:.2} requests |\n\
             | each cold start's init (billed for custom runtimes) | {init_gbs:.5} per cold start | |",
            measured * PRICE_PER_GB_SECOND,
            own * PRICE_PER_GB_SECOND,
        );
        out
    }
}
