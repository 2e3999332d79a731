use super::*;
use proptest::prelude::*;

const T0: UnixMillis = UnixMillis(1_700_000_000_000);
const MD5_ABC: &str = "900150983cd24fb0d6963f7d28e17f72";

fn issued(id: &str) -> Event {
    Event::FormIssued { asset_id: id.into(), expires_at: T0.plus_secs(86_400) }
}

fn uploaded() -> Event {
    Event::Uploaded { size: 3, md5: MD5_ABC.into(), started_at: T0, completed_at: T0 }
}

fn failed(step: Step, kind: FailureKind) -> Event {
    Event::Failed(Failure::new(step, kind, "boom"))
}

fn http(step: Step, status: u16) -> Event {
    failed(step, FailureKind::Status { status, code: None })
}

#[test]
fn the_happy_path_takes_three_requests() {
    let mut a = Asset::new(Limits::default());
    assert_eq!(a.next_action(T0), Action::RequestForm);
    a.apply(issued("a1"), T0).unwrap();
    assert_eq!(a.next_action(T0), Action::Upload { asset_id: "a1".into() });
    a.apply(Event::UploadStarted, T0).unwrap();
    a.apply(uploaded(), T0).unwrap();
    assert!(matches!(a.next_action(T0), Action::Register { ref asset_id, size: 3, .. } if asset_id == "a1"));
    a.apply(Event::Registered { already_existed: false }, T0).unwrap();
    assert_eq!(a.state(), &State::Registered { asset_id: "a1".into(), size: 3, md5: MD5_ABC.into() });
    assert_eq!(a.next_action(T0), Action::Done);
}

#[test]
fn a_retryable_failure_backs_off_then_repeats_the_step() {
    let mut a = Asset::new(Limits::default());
    a.apply(http(Step::RequestForm, 503), T0).unwrap();
    assert_eq!(a.next_action(T0), Action::Backoff { attempt: 1, retry_after_ms: None });
    // Nothing but the end of the backoff is accepted while it runs.
    assert!(a.apply(issued("a1"), T0).is_err());
    a.apply(Event::BackedOff, T0).unwrap();
    assert_eq!(a.next_action(T0), Action::RequestForm);
}

#[test]
fn retry_after_is_passed_on() {
    let mut a = Asset::new(Limits::default());
    let mut f = Failure::new(Step::RequestForm, FailureKind::Status { status: 429, code: None }, "slow down");
    f.retry_after_ms = Some(2_000);
    a.apply(Event::Failed(f), T0).unwrap();
    assert_eq!(a.next_action(T0), Action::Backoff { attempt: 1, retry_after_ms: Some(2_000) });
}

#[test]
fn a_failed_upload_is_retried_with_the_same_form() {
    let mut a = Asset::new(Limits::default());
    a.apply(issued("a1"), T0).unwrap();
    a.apply(Event::UploadStarted, T0).unwrap();
    a.apply(failed(Step::Upload, FailureKind::Network), T0).unwrap();
    a.apply(Event::BackedOff, T0).unwrap();
    assert_eq!(a.next_action(T0), Action::Upload { asset_id: "a1".into() });
}

#[test]
fn attempts_are_bounded() {
    let limits = Limits { max_attempts_per_step: 3, ..Limits::default() };
    let mut a = Asset::new(limits);
    for _ in 0..2 {
        a.apply(http(Step::RequestForm, 500), T0).unwrap();
        a.apply(Event::BackedOff, T0).unwrap();
    }
    a.apply(http(Step::RequestForm, 500), T0).unwrap();
    match a.state() {
        State::Failed { failure, .. } => assert!(failure.message.contains("gave up after 3 attempts")),
        s => panic!("expected failed, got {s:?}"),
    }
    assert_eq!(a.next_action(T0), Action::Done);
}

#[test]
fn progress_resets_the_attempt_count() {
    let limits = Limits { max_attempts_per_step: 2, ..Limits::default() };
    let mut a = Asset::new(limits);
    a.apply(http(Step::RequestForm, 500), T0).unwrap();
    a.apply(Event::BackedOff, T0).unwrap();
    a.apply(issued("a1"), T0).unwrap();
    a.apply(Event::UploadStarted, T0).unwrap();
    a.apply(failed(Step::Upload, FailureKind::Network), T0).unwrap();
    assert_eq!(a.next_action(T0), Action::Backoff { attempt: 1, retry_after_ms: None });
}

#[test]
fn an_expired_form_is_replaced_and_the_file_uploaded_again() {
    let mut a = Asset::new(Limits::default());
    a.apply(issued("a1"), T0).unwrap();
    a.apply(Event::UploadStarted, T0).unwrap();
    a.apply(failed(Step::Upload, FailureKind::FormExpired), T0).unwrap();
    assert_eq!(a.next_action(T0), Action::RequestForm);
    a.apply(issued("a2"), T0).unwrap();
    assert_eq!(a.next_action(T0), Action::Upload { asset_id: "a2".into() });
}

#[test]
fn a_form_close_to_expiry_is_not_used() {
    let limits = Limits::default();
    let mut a = Asset::new(limits);
    a.apply(Event::FormIssued { asset_id: "a1".into(), expires_at: T0.plus_secs(86_400) }, T0).unwrap();
    let late = T0.plus_secs(86_400).plus_millis(-limits.min_form_validity_ms);
    assert_eq!(a.next_action(late), Action::RequestForm);
    // The unused form may be replaced.
    a.apply(Event::FormIssued { asset_id: "a2".into(), expires_at: late.plus_secs(86_400) }, late).unwrap();
    assert_eq!(a.next_action(late), Action::Upload { asset_id: "a2".into() });
}

#[test]
fn an_upload_never_starts_on_an_expired_form() {
    let mut a = Asset::new(Limits::default());
    a.apply(Event::FormIssued { asset_id: "a1".into(), expires_at: T0 }, T0).unwrap();
    assert!(a.apply(Event::UploadStarted, T0.plus_secs(1)).is_err());
}

#[test]
fn fresh_forms_are_bounded() {
    let limits = Limits { max_fresh_forms: 1, ..Limits::default() };
    let mut a = Asset::new(limits);
    for id in ["a1", "a2"] {
        a.apply(issued(id), T0).unwrap();
        a.apply(Event::UploadStarted, T0).unwrap();
        a.apply(http(Step::Upload, 403), T0).unwrap();
    }
    assert!(matches!(a.state(), State::Failed { asset_id: Some(id), .. } if id == "a2"));
}

#[test]
fn authentication_failure_stops_the_batch_and_keeps_the_state() {
    let mut a = Asset::new(Limits::default());
    a.apply(issued("a1"), T0).unwrap();
    a.apply(Event::UploadStarted, T0).unwrap();
    a.apply(uploaded(), T0).unwrap();
    a.apply(http(Step::Register, 401), T0).unwrap();
    assert!(matches!(a.next_action(T0), Action::StopBatch(_)));
    assert!(matches!(a.state(), State::Uploaded { .. }));
    assert_eq!(a.state().report_status(), "pending");
}

#[test]
fn once_uploaded_the_asset_id_is_kept_even_if_storage_is_refused() {
    let mut a = Asset::new(Limits::default());
    a.apply(issued("a1"), T0).unwrap();
    a.apply(Event::UploadStarted, T0).unwrap();
    a.apply(uploaded(), T0).unwrap();
    a.apply(http(Step::Upload, 403), T0).unwrap();
    assert!(matches!(a.state(), State::Failed { asset_id: Some(id), .. } if id == "a1"));
}

#[test]
fn asset_id_exists_for_our_own_id_counts_as_registered() {
    let mut a = Asset::new(Limits::default());
    a.apply(issued("a1"), T0).unwrap();
    a.apply(Event::UploadStarted, T0).unwrap();
    a.apply(uploaded(), T0).unwrap();
    a.apply(Event::Registered { already_existed: true }, T0).unwrap();
    assert_eq!(a.state().report_status(), "registered");
}

#[test]
fn an_unreadable_source_fails_the_asset() {
    let mut a = Asset::new(Limits::default());
    a.fail_source(Step::Upload, "no such file: photos/a.jpg");
    assert!(matches!(a.state(), State::Failed { failure, .. } if failure.message.contains("photos/a.jpg")));
}

#[test]
fn resuming_an_interrupted_upload_uploads_again_with_the_same_form() {
    let s = State::Uploading { asset_id: "a1".into(), expires_at: T0.plus_secs(86_400) };
    let a = Asset::from_state(s, Limits::default());
    assert_eq!(a.next_action(T0), Action::Upload { asset_id: "a1".into() });
}

#[test]
fn states_round_trip_through_json() {
    let s = State::Uploaded {
        asset_id: "a1".into(),
        size: 3,
        md5: MD5_ABC.into(),
        started_at: T0,
        completed_at: T0,
    };
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"state\":\"uploaded\""), "{json}");
    assert_eq!(serde_json::from_str::<State>(&json).unwrap(), s);
}

// ---- property: random event sequences never break the invariants ----

fn any_failure() -> impl Strategy<Value = Event> {
    let step = prop_oneof![Just(Step::RequestForm), Just(Step::Upload), Just(Step::Register)];
    let kind = prop_oneof![
        Just(FailureKind::Network),
        Just(FailureKind::Timeout),
        Just(FailureKind::FormExpired),
        Just(FailureKind::Source),
        Just(FailureKind::SourceChanged),
        Just(FailureKind::TooLarge),
        Just(FailureKind::InvalidResponse),
        prop::sample::select(vec![200u16, 400, 401, 403, 404, 408, 413, 429, 500, 501, 503])
            .prop_map(|status| FailureKind::Status { status, code: None }),
    ];
    (step, kind).prop_map(|(step, kind)| Event::Failed(Failure::new(step, kind, "x")))
}

fn any_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        prop::sample::select(vec!["a1", "a2", "a3"]).prop_map(issued),
        Just(Event::UploadStarted),
        Just(uploaded()),
        any::<bool>().prop_map(|already_existed| Event::Registered { already_existed }),
        Just(Event::BackedOff),
        any_failure(),
    ]
}

proptest! {
    #[test]
    fn random_event_sequences_keep_the_invariants(events in prop::collection::vec(any_event(), 0..60)) {
        let mut a = Asset::new(Limits::default());
        let mut uploaded_id: Option<String> = None;
        let mut upload_started_with: Option<String> = None;
        for event in events {
            let before = a.clone();
            let result = a.apply(event.clone(), T0);
            if result.is_err() {
                // A refused event changes nothing.
                prop_assert_eq!(&a, &before);
                continue;
            }
            // A final state stays final.
            prop_assert!(!before.state().is_final());
            // The asset id is fixed while an upload runs.
            if let State::Uploading { asset_id, .. } = before.state()
                && let Some(id) = a.state().asset_id()
            {
                prop_assert_eq!(id, asset_id.as_str());
            }
            if let Event::UploadStarted = event {
                upload_started_with = a.state().asset_id().map(str::to_owned);
            }
            if let State::Uploaded { asset_id, .. } = a.state() {
                // Never uploaded under an id no upload was started with.
                prop_assert_eq!(Some(asset_id), upload_started_with.as_ref());
                if let Some(prev) = &uploaded_id {
                    // Once the bytes are stored under an id, the entry keeps it.
                    prop_assert_eq!(prev, asset_id);
                }
                uploaded_id = Some(asset_id.clone());
            }
            if let State::Registered { asset_id, .. } = a.state() {
                // Never registered without an upload of the same asset id.
                prop_assert_eq!(Some(asset_id), uploaded_id.as_ref());
            }
        }
    }
}

// ---- resume rules ----

fn resumed(state: State, facts: ResumeFacts) -> Action {
    Asset::resume(state, facts, Limits::default(), T0).next_action(T0)
}

fn valid_form() -> Option<UnixMillis> {
    Some(T0.plus_secs(3_600))
}

#[test]
fn resume_skips_registered_entries() {
    let s = State::Registered { asset_id: "a1".into(), size: 3, md5: MD5_ABC.into() };
    assert_eq!(resumed(s, ResumeFacts { source_changed: true, ..Default::default() }), Action::Done);
}

#[test]
fn resume_registers_an_uploaded_entry_without_uploading_again() {
    let s = State::Uploaded {
        asset_id: "a1".into(),
        size: 3,
        md5: MD5_ABC.into(),
        started_at: T0,
        completed_at: T0,
    };
    assert!(
        matches!(resumed(s, ResumeFacts::default()), Action::Register { asset_id, .. } if asset_id == "a1")
    );
}

/// An entry recorded as uploaded whose source changed since: a crash may have cut off the record of
/// its registration, so FileSpin is asked first. Registered → kept with what FileSpin holds (never a
/// second upload over a registered asset's object); unknown → the changed source uploaded again
/// (the same id while its form is valid, else a fresh one: the old id was never registered); an
/// answer that does not tell → what storage holds is registered (never a second asset).
#[test]
fn resume_looks_a_changed_source_up_before_uploading_it_again() {
    let s = State::Uploaded {
        asset_id: "a1".into(),
        size: 3,
        md5: MD5_ABC.into(),
        started_at: T0,
        completed_at: T0,
    };
    let valid = ResumeFacts { source_changed: true, form_expires_at: valid_form(), ..Default::default() };
    let expired =
        ResumeFacts { source_changed: true, form_expires_at: Some(T0.plus_secs(10)), ..Default::default() };
    let look_up = |facts: ResumeFacts| {
        let a = Asset::resume(s.clone(), facts, Limits::default(), T0);
        assert_eq!(a.next_action(T0), Action::LookUp { asset_id: "a1".into() });
        a
    };
    // Registered before the crash: FileSpin's size and checksum are the asset's.
    let mut a = look_up(valid);
    let other_md5 = "0cc175b9c0f1b6a831c399e269772661";
    a.apply(Event::Found { size: Some(1), checksum: Some(other_md5.into()) }, T0).unwrap();
    assert_eq!(a.state(), &State::Registered { asset_id: "a1".into(), size: 1, md5: other_md5.into() });
    assert_eq!(a.looked_up(), Some(LookedUp::Registered));
    assert_eq!(a.next_action(T0), Action::Done);
    // Never registered: uploaded again, under the same id while its form is valid.
    let mut a = look_up(valid);
    a.apply(Event::NotFound, T0).unwrap();
    assert_eq!(a.next_action(T0), Action::Upload { asset_id: "a1".into() });
    assert_eq!(a.looked_up(), Some(LookedUp::NotRegistered));
    let mut a = look_up(expired);
    a.apply(Event::NotFound, T0).unwrap();
    assert_eq!(a.next_action(T0), Action::RequestForm, "a fresh form: the old id was never registered");
    // An answer without size and checksum, an undocumented 4xx, or retries spent: register what
    // storage holds.
    for events in [
        vec![Event::Found { size: None, checksum: None }],
        vec![http(Step::LookUp, 400)],
        std::iter::repeat_n([http(Step::LookUp, 503), Event::BackedOff], 10).flatten().collect(),
    ] {
        let mut a = look_up(valid);
        for event in events {
            // After the last attempt there is no backoff to wait out.
            if event == Event::BackedOff && !matches!(a.next_action(T0), Action::Backoff { .. }) {
                continue;
            }
            a.apply(event, T0).unwrap();
        }
        assert!(matches!(a.next_action(T0), Action::Register { asset_id, .. } if asset_id == "a1"));
        assert_eq!(a.looked_up(), Some(LookedUp::Unknown));
    }
    // A busy FileSpin is asked again after a backoff; a refused key stops the batch.
    let mut a = look_up(valid);
    a.apply(http(Step::LookUp, 503), T0).unwrap();
    assert!(matches!(a.next_action(T0), Action::Backoff { attempt: 1, .. }));
    a.apply(Event::BackedOff, T0).unwrap();
    assert_eq!(a.next_action(T0), Action::LookUp { asset_id: "a1".into() });
    let mut a = look_up(valid);
    a.apply(http(Step::LookUp, 401), T0).unwrap();
    assert!(matches!(a.next_action(T0), Action::StopBatch(_)));
    // An unchanged source is registered without a look-up.
    let unchanged = ResumeFacts { form_expires_at: valid_form(), ..Default::default() };
    let a = Asset::resume(s.clone(), unchanged, Limits::default(), T0);
    assert!(matches!(a.next_action(T0), Action::Register { .. }));
}

#[test]
fn resume_retries_failed_entries_only_when_asked() {
    let s = State::Failed {
        asset_id: None,
        failure: Failure::new(Step::Upload, FailureKind::Source, "gone"),
        uploaded: None,
        data_set: false,
    };
    assert_eq!(resumed(s.clone(), ResumeFacts::default()), Action::Done);
    assert_eq!(resumed(s, ResumeFacts { retry_failed: true, ..Default::default() }), Action::RequestForm);
}

#[test]
fn a_registration_that_failed_for_good_is_retried_as_a_registration_of_the_same_asset() {
    let limits = Limits { max_attempts_per_step: 2, ..Limits::default() };
    let mut a = Asset::new(limits);
    a.apply(issued("a1"), T0).unwrap();
    a.apply(Event::UploadStarted, T0).unwrap();
    a.apply(uploaded(), T0).unwrap();
    for _ in 0..2 {
        let _ = a.apply(Event::BackedOff, T0);
        a.apply(failed(Step::Register, FailureKind::Timeout), T0).unwrap();
    }
    assert!(matches!(a.state(), State::Failed { uploaded: Some(_), .. }));
    let facts = ResumeFacts { retry_failed: true, ..Default::default() };
    let again = Asset::resume(a.state().clone(), facts, limits, T0);
    assert!(matches!(again.next_action(T0), Action::Register { asset_id, size: 3, .. } if asset_id == "a1"));
}

#[test]
fn short_lived_forms_are_used_for_most_of_their_life() {
    let mut a = Asset::new(Limits::default());
    a.apply(Event::FormIssued { asset_id: "a1".into(), expires_at: T0.plus_secs(4) }, T0).unwrap();
    assert_eq!(a.next_action(T0.plus_secs(2)), Action::Upload { asset_id: "a1".into() });
    assert_eq!(a.next_action(T0.plus_millis(3_500)), Action::RequestForm);
}

#[test]
fn forms_that_always_arrive_nearly_expired_end_the_asset() {
    let mut a = Asset::new(Limits::default());
    for i in 0..10 {
        if a.state().is_final() {
            break;
        }
        assert_eq!(a.next_action(T0), Action::RequestForm, "round {i}");
        a.apply(Event::FormIssued { asset_id: format!("a{i}"), expires_at: T0 }, T0).unwrap();
    }
    assert!(
        matches!(a.state(), State::Failed { failure, .. } if failure.message.contains("expired too soon"))
    );
}

// ---- after registration: the entry's data, then verification ----

const FULL: Goal = Goal { set_data: true, verify: true };

fn registered(goal: Goal) -> Asset {
    Asset::from_state(
        State::Registered { asset_id: "a1".into(), size: 3, md5: MD5_ABC.into() },
        Limits::default(),
    )
    .with_goal(goal)
}

fn checked(status: &str, size: u64, checksum: &str) -> Event {
    Event::Checked { status: status.into(), size: Some(size), checksum: Some(checksum.into()), reason: None }
}

fn not_ready_update() -> Event {
    Event::Failed(Failure::new(
        Step::SetData,
        FailureKind::Status { status: 400, code: Some("NOT_READY".into()) },
        "retry after a few seconds",
    ))
}

#[test]
fn a_registered_asset_gets_its_data_then_is_verified() {
    let mut a = registered(FULL);
    assert!(!a.state().is_done(FULL));
    assert_eq!(a.next_action(T0), Action::SetData { asset_id: "a1".into() });
    // Verification waits for the data.
    assert!(a.apply(checked("OK", 3, MD5_ABC), T0).is_err());
    a.apply(Event::DataSet, T0).unwrap();
    assert_eq!(a.next_action(T0), Action::Verify { asset_id: "a1".into() });
    a.apply(checked("OK", 3, &MD5_ABC.to_uppercase()), T0).unwrap();
    assert_eq!(
        a.state(),
        &State::Verified { asset_id: "a1".into(), size: 3, md5: MD5_ABC.into(), data_set: true }
    );
    assert_eq!(a.next_action(T0), Action::Done);
    assert_eq!(a.state().report_status(), "registered");
    // Without a goal, registered is done.
    assert_eq!(registered(Goal::default()).next_action(T0), Action::Done);
    assert_eq!(
        registered(Goal { set_data: false, verify: true }).next_action(T0),
        Action::Verify { asset_id: "a1".into() }
    );
}

#[test]
fn not_ready_is_waited_out_without_spending_attempts_and_ends_after_the_limit() {
    let limits = Limits { max_not_ready_polls: 3, ..Limits::default() };
    let mut a = registered(FULL);
    a.limits = limits;
    for poll in 1..=3 {
        a.apply(not_ready_update(), T0).unwrap();
        assert_eq!(a.next_action(T0), Action::Backoff { attempt: poll, retry_after_ms: None });
        a.apply(Event::BackedOff, T0).unwrap();
    }
    assert_eq!(a.attempts, 0, "NOT_READY is a wait, not a failed attempt");
    a.apply(not_ready_update(), T0).unwrap();
    let State::Failed { failure, uploaded, .. } = a.state() else { panic!("{:?}", a.state()) };
    assert!(failure.message.contains("spinlift verify"), "{failure}");
    assert_eq!(uploaded.as_ref().map(|u| u.size), Some(3), "kept for a retry of the verification");

    let mut v = registered(Goal { set_data: false, verify: true });
    v.apply(checked("NOT_READY", 0, ""), T0).unwrap();
    assert!(matches!(v.next_action(T0), Action::Backoff { attempt: 1, .. }));
    v.apply(Event::BackedOff, T0).unwrap();
    v.apply(checked("OK", 3, MD5_ABC), T0).unwrap();
    assert!(matches!(v.state(), State::Verified { data_set: false, .. }));
}

#[test]
fn processing_errors_and_mismatches_fail_the_asset_never_verify_it() {
    let verify = Goal { set_data: false, verify: true };
    let mut a = registered(verify);
    let event = Event::Checked {
        status: "ERROR".into(),
        size: Some(3),
        checksum: Some(MD5_ABC.into()),
        reason: Some("not an image".into()),
    };
    a.apply(event, T0).unwrap();
    let State::Failed { failure, .. } = a.state() else { panic!() };
    assert_eq!((failure.step, &failure.kind), (Step::Verify, &FailureKind::Processing));
    assert!(failure.message.contains("status ERROR") && failure.message.contains("not an image"));

    for (event, what) in [
        (checked("OK", 4, MD5_ABC), "size 4 where 3 bytes"),
        (checked("OK", 3, "0123456789abcdef0123456789abcdef"), "checksum 0123"),
        (Event::Checked { status: "OK".into(), size: None, checksum: None, reason: None }, "no size"),
    ] {
        let mut a = registered(verify);
        a.apply(event, T0).unwrap();
        let State::Failed { failure, .. } = a.state() else { panic!() };
        assert_eq!(failure.kind, FailureKind::Mismatch);
        assert!(failure.message.contains(what), "{failure}");
    }
}

#[test]
fn resume_carries_on_from_the_last_recorded_step_after_registration() {
    let data_set = State::DataSet { asset_id: "a1".into(), size: 3, md5: MD5_ABC.into() };
    let asset = Asset::resume(data_set, ResumeFacts::default(), Limits::default(), T0).with_goal(FULL);
    assert_eq!(asset.next_action(T0), Action::Verify { asset_id: "a1".into() });
    let verified = State::Verified { asset_id: "a1".into(), size: 3, md5: MD5_ABC.into(), data_set: true };
    assert!(verified.is_done(FULL));
    // A verification that failed for good is checked again on --retry-failed, without registering.
    let mut a = registered(Goal { set_data: false, verify: true });
    a.apply(checked("ERROR", 3, MD5_ABC), T0).unwrap();
    let failed = a.state().clone();
    let retry = ResumeFacts { retry_failed: true, ..ResumeFacts::default() };
    let again = Asset::resume(failed.clone(), retry, Limits::default(), T0).with_goal(FULL);
    assert_eq!(again.state(), &State::Registered { asset_id: "a1".into(), size: 3, md5: MD5_ABC.into() });
    assert_eq!(again.next_action(T0), Action::SetData { asset_id: "a1".into() });
    assert_eq!(
        Asset::resume(failed, ResumeFacts::default(), Limits::default(), T0).next_action(T0),
        Action::Done
    );
}

fn any_check() -> impl Strategy<Value = Event> {
    let status = prop::sample::select(vec!["OK", "NOT_READY", "ERROR", "ARCHIVED", "PURGED"]);
    let size = prop::option::of(prop::sample::select(vec![3u64, 4]));
    let checksum = prop::option::of(prop::sample::select(vec![MD5_ABC.to_owned(), "f".repeat(32)]));
    (status, size, checksum).prop_map(|(status, size, checksum)| Event::Checked {
        status: status.into(),
        size,
        checksum,
        reason: None,
    })
}

proptest! {
    /// Whatever FileSpin answers, in any order: an asset is verified only when its last check said OK
    /// (or ARCHIVED) with the size and checksum uploaded, and only after its data when it has data.
    #[test]
    fn only_a_matching_check_verifies(
        goal in (any::<bool>(), Just(true)).prop_map(|(set_data, verify)| Goal { set_data, verify }),
        events in prop::collection::vec(prop_oneof![
            any_check(),
            Just(Event::DataSet),
            Just(Event::BackedOff),
            Just(not_ready_update()),
            any_failure(),
        ], 0..40),
    ) {
        let mut a = registered(goal);
        let mut data_set = false;
        for event in events {
            let before = a.clone();
            if a.apply(event.clone(), T0).is_err() {
                prop_assert_eq!(&a, &before);
                continue;
            }
            data_set |= matches!(event, Event::DataSet);
            if let State::Verified { size, md5, data_set: recorded, .. } = a.state() {
                let was_verified = matches!(before.state(), State::Verified { .. });
                prop_assert!(!was_verified);
                let Event::Checked { status, size: seen, checksum, .. } = &event else {
                    panic!("verified by {event:?}");
                };
                prop_assert!(status == "OK" || status == "ARCHIVED");
                prop_assert_eq!((*seen, checksum.as_deref()), (Some(*size), Some(md5.as_str())));
                prop_assert_eq!(*recorded, data_set);
                prop_assert!(data_set || !goal.set_data);
            }
        }
    }
}

#[test]
fn an_asset_whose_verification_failed_still_says_its_data_was_set() {
    let mut a = registered(FULL);
    a.apply(Event::DataSet, T0).unwrap();
    a.apply(checked("ERROR", 3, MD5_ABC), T0).unwrap();
    assert!(matches!(a.state(), State::Failed { data_set: true, .. }), "{:?}", a.state());
    assert!(a.state().data_set());
    let mut b = registered(Goal { set_data: false, verify: true });
    b.apply(checked("ERROR", 3, MD5_ABC), T0).unwrap();
    assert!(!b.state().data_set());
}

/// A crash may cut off the records of an upload and its registration (neither is waited for before
/// the next step): an entry resumed in flight is looked up first, so that nothing FileSpin holds is
/// uploaded again and no fresh form makes a second asset.
#[test]
fn resume_in_flight_looks_the_asset_up_before_uploading_again() {
    let in_flight = [
        State::FormIssued { asset_id: "a1".into(), expires_at: T0.plus_secs(86_400) },
        State::Uploading { asset_id: "a1".into(), expires_at: T0.plus_secs(86_400) },
    ];
    for s in in_flight {
        let valid = ResumeFacts { form_expires_at: valid_form(), ..Default::default() };
        let expired = ResumeFacts { form_expires_at: Some(T0.plus_secs(10)), ..Default::default() };
        let changed =
            ResumeFacts { source_changed: true, form_expires_at: valid_form(), ..Default::default() };
        let no_form = ResumeFacts::default();
        for facts in [valid, expired, changed, no_form] {
            let resumed = || {
                let a = Asset::resume(s.clone(), facts, Limits::default(), T0);
                assert_eq!(a.next_action(T0), Action::LookUp { asset_id: "a1".into() }, "{facts:?}");
                a
            };
            // Registered before the crash: kept, never a second asset.
            let mut a = resumed();
            a.apply(Event::Found { size: Some(3), checksum: Some(MD5_ABC.into()) }, T0).unwrap();
            assert_eq!(a.state(), &State::Registered { asset_id: "a1".into(), size: 3, md5: MD5_ABC.into() });
            assert_eq!(a.next_action(T0), Action::Done);
            // Not registered, or no answer that tells: the form while it is valid, else a fresh one.
            let usable = facts.form_expires_at == valid_form();
            for event in
                [Event::NotFound, Event::Found { size: None, checksum: None }, http(Step::LookUp, 400)]
            {
                let mut a = resumed();
                a.apply(event.clone(), T0).unwrap();
                let expected =
                    if usable { Action::Upload { asset_id: "a1".into() } } else { Action::RequestForm };
                assert_eq!(a.next_action(T0), expected, "{facts:?} {event:?}");
            }
        }
    }
}
