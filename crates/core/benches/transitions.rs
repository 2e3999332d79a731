//! The state machine's speed: whole asset lives per second, and the transitions (events applied) per
//! second they make. Each iteration drives one fresh [`Asset`] from pending to registered through the
//! public API, as the engine does: ask for the next [`Action`], answer it with the [`Event`] its
//! outcome makes (strings cloned as the engine clones them), until [`Action::Done`].
//!
//! - `happy_life`: form issued → uploading → uploaded → registered (4 transitions).
//! - `retry_and_fresh_form_life`: the upload breaks off (network: back off, retry), S3 then refuses the
//!   expired policy (403 `AccessDenied`: a fresh form), the register call meets a 503 (back off, retry)
//!   (12 transitions).
//!
//! `cargo bench -p spinlift-core --bench transitions`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spinlift_core::{Action, Asset, Event, Failure, FailureKind, Limits, State, Step, UnixMillis};

const ASSET_IDS: [&str; 2] = ["ec279822540b412e903827f473bb53a3", "5f0c1d2e3a4b4c5d8e9f0a1b2c3d4e5f"];
const MD5: &str = "900150983cd24fb0d6963f7d28e17f72";

/// A failure the script injects in place of the next outcome of `at`.
struct Fault {
    at: Step,
    failure: Failure,
}

/// Drives one asset from pending to its final state; the failures of `script` replace, in order, the
/// outcome of the step each names. Returns the asset and the events applied (transitions).
fn life(script: &[Fault], now: UnixMillis) -> (Asset, u64) {
    let mut asset = Asset::new(Limits::default());
    let mut faults = script.iter().peekable();
    let mut forms = 0;
    let mut transitions = 0;
    loop {
        let action = asset.next_action(now);
        // The step whose outcome the event reports; `None` where nothing can fail (starting an upload,
        // a backoff waited out).
        let step = match (&action, asset.state()) {
            (Action::RequestForm, _) => Some(Step::RequestForm),
            (Action::Upload { .. }, State::Uploading { .. }) => Some(Step::Upload),
            (Action::Register { .. }, _) => Some(Step::Register),
            _ => None,
        };
        let fault = faults.next_if(|f| Some(f.at) == step);
        let event = match (action, fault) {
            (Action::Done, _) => break,
            (Action::Backoff { .. }, _) => Event::BackedOff,
            (_, Some(fault)) => Event::Failed(fault.failure.clone()),
            (Action::RequestForm, None) => {
                forms += 1;
                Event::FormIssued {
                    asset_id: ASSET_IDS[(forms - 1) % ASSET_IDS.len()].to_owned(),
                    expires_at: now.plus_secs(86_400),
                }
            }
            (Action::Upload { .. }, None) if matches!(asset.state(), State::FormIssued { .. }) => {
                Event::UploadStarted
            }
            (Action::Upload { .. }, None) => Event::Uploaded {
                size: 2_345_678,
                md5: MD5.to_owned(),
                started_at: now,
                completed_at: now.plus_millis(1_500),
            },
            (Action::Register { .. }, None) => Event::Registered { already_existed: false },
            (other, None) => panic!("unexpected action {other:?}"),
        };
        asset.apply(event, now).expect("the engine's event fits the state");
        transitions += 1;
    }
    (asset, transitions)
}

fn retry_script() -> Vec<Fault> {
    let status = |status, code: Option<&str>| FailureKind::Status { status, code: code.map(str::to_owned) };
    vec![
        Fault {
            at: Step::Upload,
            failure: Failure::new(Step::Upload, FailureKind::Network, "connection reset"),
        },
        Fault {
            at: Step::Upload,
            failure: Failure::new(
                Step::Upload,
                status(403, Some("AccessDenied")),
                "Invalid according to Policy: Policy expired.",
            ),
        },
        Fault {
            at: Step::Register,
            failure: Failure::new(Step::Register, status(503, None), "Service Unavailable"),
        },
    ]
}

fn bench_lives(c: &mut Criterion) {
    let now = UnixMillis(1_700_000_000_000);
    let mut group = c.benchmark_group("asset_transitions");
    group.measurement_time(Duration::from_secs(5));

    for (name, script) in [("happy_life", Vec::new()), ("retry_and_fresh_form_life", retry_script())] {
        // One run first: the life must end registered, having used every injected fault.
        let (asset, transitions) = life(&script, now);
        // A fresh form means the second asset id.
        let expected_id = ASSET_IDS[usize::from(!script.is_empty())];
        assert!(
            matches!(asset.state(), State::Registered { asset_id, .. } if asset_id == expected_id),
            "{name} ended {:?}",
            asset.state()
        );
        eprintln!("asset_transitions/{name}: {transitions} transitions per life");
        group.throughput(Throughput::Elements(transitions));
        group.bench_function(name, |b| b.iter(|| life(black_box(&script), black_box(now))));
    }
    group.finish();
}

criterion_group!(benches, bench_lives);
criterion_main!(benches);
