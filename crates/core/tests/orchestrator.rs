//! The orchestrator against SPEC §3–4, on a virtual clock: a table of every start mode ×
//! failover mode × failure kind with the exact actions and their times, the manual rules, the
//! end rule, and a property test over random event sequences.
use std::time::{Duration, Instant};

use convrec_core::config::RecordingSettings;
use convrec_core::orchestrator::{
    Action, Failure, Orchestrator, Refusal, Requester, Source, State, Trigger, Webhook,
};
use proptest::prelude::*;

/// Settings: recording on, 2 attempts, 10 s to get ready, delays capped at 4 s, plus `extra`.
fn settings(extra: &[(&str, &str)]) -> RecordingSettings {
    let mut set: Vec<(String, String)> = vec![
        ("messenger.recordingEnabled".into(), "true".into()),
        (
            "conversation.recording.recordingEnabled".into(),
            "true".into(),
        ),
        (
            "conversation.recording.recordingMaxRetries".into(),
            "2".into(),
        ),
        (
            "conversation.recording.initializationTimeout".into(),
            "10".into(),
        ),
        (
            "conversation.recording.recordingMaxRetryDelay".into(),
            "4".into(),
        ),
    ];
    for (k, v) in extra {
        set.push((format!("conversation.recording.{k}"), (*v).into()));
    }
    // Later entries win: put the extras first.
    set.reverse();
    RecordingSettings::resolve(&[&set])
}

/// An orchestrator on a virtual clock, with what it did written down as `t=…s what`.
struct Sim {
    o: Orchestrator,
    start: Instant,
    now: Instant,
    log: Vec<String>,
}

impl Sim {
    fn new(settings: RecordingSettings) -> Self {
        let start = Instant::now();
        Self {
            o: Orchestrator::new(settings),
            start,
            now: start,
            log: Vec::new(),
        }
    }

    /// Moves the clock to `secs`, firing the timers due on the way.
    fn at(&mut self, secs: u64) -> &mut Self {
        let to = self.start + Duration::from_secs(secs);
        while let Some(t) = self.o.poll_timeout().filter(|t| *t <= to) {
            self.now = t;
            self.o.handle_timeout(t);
            self.drain();
        }
        self.now = to;
        self
    }

    fn drain(&mut self) {
        let t = (self.now - self.start).as_secs();
        while let Some(action) = self.o.poll_action() {
            self.log.push(format!("t={t}s {}", show(&action)));
        }
    }

    fn call(&mut self, id: &str) -> &mut Self {
        self.o
            .handle_interaction_started(self.now, id, Source::Call);
        self.drain();
        self
    }

    fn layer(&mut self, id: &str) -> &mut Self {
        self.o
            .handle_interaction_started(self.now, id, Source::CollaborationLayer);
        self.drain();
        self
    }

    fn end(&mut self, id: &str) -> &mut Self {
        self.o.handle_interaction_ended(self.now, id);
        self.drain();
        self
    }

    fn ready(&mut self, recording: u64, attempt: u32) -> &mut Self {
        self.o.handle_recorder_ready(self.now, recording, attempt);
        self.drain();
        self
    }

    fn durable(&mut self, recording: u64, attempt: u32) -> &mut Self {
        self.o.handle_fragment_durable(self.now, recording, attempt);
        self.drain();
        self
    }

    fn failed(&mut self, recording: u64, attempt: u32, failure: Failure) -> &mut Self {
        self.o
            .handle_recorder_failed(self.now, recording, attempt, failure);
        self.drain();
        self
    }

    fn done(&mut self, recording: u64) -> &mut Self {
        self.o.handle_recorder_done(self.now, recording);
        self.drain();
        self
    }

    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }
}

fn show(action: &Action) -> String {
    match action {
        Action::NewRecording { recording, trigger } => format!(
            "new #{recording} {}",
            if *trigger == Trigger::Automatic {
                "auto"
            } else {
                "manual"
            }
        ),
        Action::Launch { recording, attempt } => format!("launch #{recording}.{attempt}"),
        Action::Kill { recording, attempt } => format!("kill #{recording}.{attempt}"),
        Action::Stop { recording } => format!("stop #{recording}"),
        Action::Finish {
            recording,
            end_reason,
        } => format!("finish #{recording} {end_reason}"),
        Action::Hold(id) => format!("hold {id}"),
        Action::Release(id) => format!("release {id}"),
        Action::EndInteractions(ids) => format!("end {}", ids.join(",")),
        Action::Webhook(Webhook::Started { recording }) => format!("webhook started #{recording}"),
        Action::Webhook(Webhook::Failed { recording, reason }) => {
            format!("webhook failed #{recording} {reason}")
        }
        Action::State(state) => format!("state {}", state.as_str()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// The recorder never connects: its attempts time out.
    NeverConnects,
    /// The recorder connects but never says ready. The server tells the orchestrator nothing
    /// until a recorder is ready, so this is the same sequence as `NeverConnects`; it is listed
    /// to show every failure kind of the issue is covered.
    ConnectsButNeverReady,
    /// Ready, recording, then it crashes.
    CrashesMidway,
    /// The store check fails when the recording would start.
    StorageUnreachable,
}

/// Runs one failure kind and returns the log.
fn scenario(start_mode: &str, failover: &str, kind: Kind) -> Vec<String> {
    let mut sim = Sim::new(settings(&[
        ("recordingStartMode", &format!("\"{start_mode}\"")),
        ("recordingFailoverMode", &format!("\"{failover}\"")),
    ]));
    sim.call("call");
    match kind {
        Kind::NeverConnects | Kind::ConnectsButNeverReady => {
            sim.at(40);
        }
        Kind::CrashesMidway => {
            sim.at(1)
                .ready(1, 1)
                .at(2)
                .durable(1, 1)
                .at(5)
                .failed(1, 1, Failure::Crashed)
                .at(7);
        }
        Kind::StorageUnreachable => {
            sim.failed(1, 1, Failure::Storage).at(60);
        }
    }
    sim.take()
}

#[test]
fn every_start_mode_failover_mode_and_failure_does_what_spec_4_says() {
    let start = |sync: bool| {
        let mut v = vec!["t=0s new #1 auto"];
        if sync {
            v.push("t=0s hold call");
        }
        v.extend([
            "t=0s state INITIALIZING",
            "t=0s launch #1.1",
            "t=0s state WAITING_READY",
        ]);
        v
    };
    for sync in [true, false] {
        let mode = if sync { "SYNCHRONOUS" } else { "ASYNCHRONOUS" };
        let release = |t: u64| -> Vec<String> {
            if sync {
                vec![format!("t={t}s release call")]
            } else {
                vec![]
            }
        };
        for retry in [true, false] {
            let failover = if retry { "RETRY" } else { "ABORT" };
            let strs = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();

            // Never ready: attempt 1 times out at 10 s, attempt 2 follows 1 s later and times
            // out at 21 s; the attempts are exhausted.
            let mut expected = strs(start(sync));
            expected.extend(strs(vec![
                "t=10s kill #1.1",
                "t=11s state INITIALIZING",
                "t=11s launch #1.2",
                "t=11s state WAITING_READY",
                "t=21s kill #1.2",
            ]));
            if retry {
                // The media is released and attempts go on in the background: 2 s, then 4 s
                // (the cap), then 4 s again.
                expected.extend(strs(vec![
                    "t=21s webhook failed #1 ABORT_TIMEOUT",
                    "t=21s state FAILED",
                ]));
                expected.extend(release(21));
                expected.extend(strs(vec![
                    "t=23s state INITIALIZING",
                    "t=23s launch #1.3",
                    "t=23s state WAITING_READY",
                    "t=33s kill #1.3",
                    "t=37s state INITIALIZING",
                    "t=37s launch #1.4",
                    "t=37s state WAITING_READY",
                ]));
            } else {
                expected.extend(strs(vec![
                    "t=21s finish #1 ABORT_TIMEOUT",
                    "t=21s webhook failed #1 ABORT_TIMEOUT",
                    "t=21s state FAILED",
                ]));
                expected.extend(release(21));
                expected.push("t=21s end call".into());
            }
            for kind in [Kind::NeverConnects, Kind::ConnectsButNeverReady] {
                assert_eq!(
                    scenario(mode, failover, kind),
                    expected,
                    "{mode} {failover} {kind:?}"
                );
            }

            // Crash mid-way: the recording is closed; RETRY starts a new one after 1 s, ABORT
            // ends the call.
            let mut expected = strs(start(sync));
            expected.extend(release(1));
            expected.extend(strs(vec![
                "t=1s state READY",
                "t=2s webhook started #1",
                "t=2s state STARTED",
                "t=5s finish #1 ABORT_UNEXPECTED",
                "t=5s webhook failed #1 ABORT_UNEXPECTED",
                "t=5s state FAILED",
            ]));
            if retry {
                expected.extend(strs(vec![
                    "t=5s new #2 auto",
                    "t=6s state INITIALIZING",
                    "t=6s launch #2.1",
                    "t=6s state WAITING_READY",
                ]));
            } else {
                expected.push("t=5s end call".into());
            }
            assert_eq!(
                scenario(mode, failover, Kind::CrashesMidway),
                expected,
                "{mode} {failover} crash"
            );

            // Storage unreachable: no further attempts in either mode; ABORT ends the call.
            let mut expected = strs(start(sync));
            expected.extend(strs(vec![
                "t=0s finish #1 ABORT_BLOBSTORE_FAILURE",
                "t=0s webhook failed #1 ABORT_BLOBSTORE_FAILURE",
                "t=0s state FAILED",
            ]));
            expected.extend(release(0));
            if !retry {
                expected.push("t=0s end call".into());
            }
            assert_eq!(
                scenario(mode, failover, Kind::StorageUnreachable),
                expected,
                "{mode} {failover} storage"
            );
        }
    }
}

#[test]
fn an_automatic_recording_ends_when_no_triggering_interaction_is_left() {
    // Sources = {CALL, COLLABORATION_LAYER}: co-browsing starts (recording starts), a call
    // starts, the layer stops: the call keeps the recording going (SPEC §3's example).
    let mut sim = Sim::new(settings(&[("recordingStartMode", "\"ASYNCHRONOUS\"")]));
    sim.layer("share").ready(1, 1).call("call").end("share");
    assert_eq!(sim.o.state(), State::Ready);
    sim.take();
    sim.at(3).end("call");
    assert_eq!(sim.take(), ["t=3s stop #1", "t=3s state STOPPED"]);
    // Sources = {COLLABORATION_LAYER}: the same sequence ends it when the layer stops.
    let mut sim = Sim::new(settings(&[
        ("recordingStartMode", "\"ASYNCHRONOUS\""),
        ("recordingTriggeringSources", "[\"COLLABORATION_LAYER\"]"),
    ]));
    sim.call("call");
    assert_eq!(sim.take(), Vec::<String>::new(), "a call does not trigger");
    sim.layer("share").ready(1, 1).end("share");
    assert_eq!(sim.o.state(), State::Stopped);
}

#[test]
fn a_start_called_off_before_ready_records_nothing_and_the_next_call_records_again() {
    let mut sim = Sim::new(settings(&[]));
    sim.call("a").at(2).end("a");
    assert_eq!(
        sim.take()[5..],
        [
            "t=2s kill #1.1",
            "t=2s finish #1 NORMAL",
            "t=2s state STOPPED",
        ]
    );
    assert!(sim.o.held().is_empty(), "an ended call holds nothing");
    sim.call("b");
    assert_eq!(sim.o.recording(), Some(2));
}

#[test]
fn a_triggering_interaction_during_a_stop_starts_the_next_recording_when_it_is_done() {
    let mut sim = Sim::new(settings(&[("recordingStartMode", "\"ASYNCHRONOUS\"")]));
    sim.call("a").ready(1, 1).end("a").call("b");
    assert_eq!(sim.o.recording(), Some(1), "one recording at a time");
    sim.take();
    sim.at(1).done(1);
    assert_eq!(
        sim.take()[..2],
        ["t=1s finish #1 NORMAL", "t=1s new #2 auto"]
    );
}

#[test]
fn a_manual_start_while_the_last_recording_is_stopping_starts_the_next_when_it_is_done() {
    let mut sim = Sim::new(settings(&[("recordingTriggeringMode", "\"MANUAL\"")]));
    sim.call("c");
    let now = sim.now;
    assert_eq!(
        sim.o.handle_start_request(now, Requester::AssignedAgent),
        Ok(())
    );
    let stop_then_start = |sim: &mut Sim| {
        let now = sim.now;
        assert_eq!(
            sim.o.handle_stop_request(now, Requester::AssignedAgent),
            Ok(())
        );
        assert_eq!(
            sim.o.handle_start_request(now, Requester::AssignedAgent),
            Ok(())
        );
    };
    sim.ready(1, 1).durable(1, 1);
    // Its recorder is still finishing the file: the start is taken, once.
    stop_then_start(&mut sim);
    assert_eq!(
        sim.o.handle_start_request(now, Requester::AssignedAgent),
        Err(Refusal::RecordingRunning),
        "one start is waiting already"
    );
    assert_eq!(sim.o.recording(), Some(1), "one recording at a time");
    sim.take();
    sim.at(1).done(1);
    let log = sim.take();
    let position = |line: &str| log.iter().position(|l| l == line);
    assert!(
        position("t=1s finish #1 NORMAL") < position("t=1s new #2 manual")
            && position("t=1s finish #1 NORMAL").is_some(),
        "{log:?}"
    );
    // A start waiting when the call ends is dropped with it.
    sim.ready(2, 1).durable(2, 1);
    stop_then_start(&mut sim);
    sim.end("c").at(2).done(2);
    let log = sim.take();
    assert!(log.contains(&"t=2s finish #2 NORMAL".to_owned()), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("new #3")), "{log:?}");
}

#[test]
fn manual_recordings_follow_who_may_and_fail_without_failover() {
    let manual = |allow: &str| {
        Sim::new(settings(&[
            ("recordingTriggeringMode", "\"MANUAL\""),
            ("allowManualRecording", &format!("\"{allow}\"")),
        ]))
    };
    let mut sim = manual("ASSIGNED_AGENT");
    let now = sim.now;
    assert_eq!(
        sim.o.handle_start_request(now, Requester::AssignedAgent),
        Err(Refusal::NothingToRecord)
    );
    sim.call("c");
    assert_eq!(
        sim.take(),
        Vec::<String>::new(),
        "manual mode: a call starts nothing"
    );
    for who in [Requester::SecondaryAgent, Requester::Visitor] {
        assert_eq!(
            sim.o.handle_start_request(now, who),
            Err(Refusal::RecordingDenied)
        );
    }
    assert_eq!(
        sim.o.handle_start_request(now, Requester::AssignedAgent),
        Ok(())
    );
    sim.drain();
    assert_eq!(
        sim.take(),
        [
            "t=0s new #1 manual",
            "t=0s state INITIALIZING",
            "t=0s launch #1.1",
            "t=0s state WAITING_READY",
        ],
        "manual starts are asynchronous: nothing is held"
    );
    assert_eq!(
        sim.o.handle_start_request(now, Requester::AssignedAgent),
        Err(Refusal::RecordingRunning)
    );
    // Its attempts fail: it fails and reports; no failover, the call goes on.
    sim.at(30);
    let log = sim.take();
    assert_eq!(
        log[log.len() - 3..],
        [
            "t=21s finish #1 ABORT_TIMEOUT",
            "t=21s webhook failed #1 ABORT_TIMEOUT",
            "t=21s state FAILED",
        ]
    );
    // ALL_AGENTS admits the secondary agent; an admin may always; NONE admits no participant.
    let mut sim = manual("ALL_AGENTS");
    sim.call("c");
    let now = sim.now;
    assert_eq!(
        sim.o.handle_start_request(now, Requester::SecondaryAgent),
        Ok(())
    );
    sim.ready(1, 1);
    assert_eq!(
        sim.o.handle_stop_request(now, Requester::Visitor),
        Err(Refusal::RecordingDenied)
    );
    assert_eq!(
        sim.o.handle_stop_request(now, Requester::AssignedAgent),
        Ok(())
    );
    assert_eq!(
        sim.o.handle_stop_request(now, Requester::AssignedAgent),
        Err(Refusal::RecordingNotRunning)
    );
    let mut sim = manual("NONE");
    sim.call("c");
    let now = sim.now;
    assert_eq!(
        sim.o.handle_start_request(now, Requester::AssignedAgent),
        Err(Refusal::RecordingDenied)
    );
    assert_eq!(sim.o.handle_start_request(now, Requester::Admin), Ok(()));
}

#[test]
fn participants_cannot_stop_an_automatic_recording_but_an_admin_can() {
    let mut sim = Sim::new(settings(&[]));
    sim.call("c").ready(1, 1);
    let now = sim.now;
    assert_eq!(
        sim.o.handle_stop_request(now, Requester::AssignedAgent),
        Err(Refusal::RecordingDenied)
    );
    assert_eq!(
        sim.o.handle_start_request(now, Requester::AssignedAgent),
        Err(Refusal::RecordingDenied),
        "automatic mode has no manual starts"
    );
    assert_eq!(sim.o.handle_stop_request(now, Requester::Admin), Ok(()));
    assert_eq!(sim.o.state(), State::Stopped);
}

#[test]
fn the_delay_sequence_restarts_after_a_recording_ran_a_minute() {
    let mut sim = Sim::new(settings(&[("recordingStartMode", "\"ASYNCHRONOUS\"")]));
    sim.call("c")
        .ready(1, 1)
        .at(5)
        .failed(1, 1, Failure::Crashed);
    // Recording #2's first attempt after 1 s; it runs 2 minutes, then crashes: 1 s again.
    sim.at(6).ready(2, 1).at(130).failed(2, 1, Failure::Crashed);
    assert_eq!(
        sim.o.next_attempt_at(),
        Some(sim.start + Duration::from_secs(131))
    );
    // Crashing quickly keeps doubling: 2 s.
    sim.at(131)
        .ready(3, 1)
        .at(135)
        .failed(3, 1, Failure::Crashed);
    assert_eq!(
        sim.o.next_attempt_at(),
        Some(sim.start + Duration::from_secs(137))
    );
}

/// What can happen to a conversation, for the property test.
#[derive(Debug, Clone)]
enum Event {
    Call(u8),
    Layer(u8),
    End(u8),
    Ready,
    Durable,
    Crash,
    Storage,
    Done,
    Start(u8),
    Stop(u8),
    Wait(u16),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0..3u8).prop_map(Event::Call),
        (0..3u8).prop_map(Event::Layer),
        (0..3u8).prop_map(Event::End),
        Just(Event::Ready),
        Just(Event::Durable),
        Just(Event::Crash),
        Just(Event::Storage),
        Just(Event::Done),
        (0..4u8).prop_map(Event::Start),
        (0..4u8).prop_map(Event::Stop),
        (0..400u16).prop_map(Event::Wait),
    ]
}

fn requester(n: u8) -> Requester {
    [
        Requester::Admin,
        Requester::AssignedAgent,
        Requester::SecondaryAgent,
        Requester::Visitor,
    ][usize::from(n % 4)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever happens: never two recordings open at once, held media only while a recorder
    /// is awaited, no delay above the cap, and when everything ends nothing stays held.
    #[test]
    fn no_event_sequence_breaks_the_rules(
        events in proptest::collection::vec(event(), 1..80),
        sync in any::<bool>(),
        retry in any::<bool>(),
        manual in any::<bool>(),
    ) {
        let s = settings(&[
            ("recordingStartMode", if sync { "\"SYNCHRONOUS\"" } else { "\"ASYNCHRONOUS\"" }),
            ("recordingFailoverMode", if retry { "\"RETRY\"" } else { "\"ABORT\"" }),
            ("recordingTriggeringMode", if manual { "\"MANUAL\"" } else { "\"AUTOMATIC\"" }),
            ("allowManualRecording", "\"ALL_AGENTS\""),
        ]);
        let cap = Duration::from_secs(u64::from(s.max_retry_delay_s));
        let mut o = Orchestrator::new(s);
        let start = Instant::now();
        let mut now = start;
        // Recordings created and not yet closed (finished, or stopped and then done/failed).
        let mut open: Vec<u64> = Vec::new();
        let mut stopping: Vec<u64> = Vec::new();
        let mut launched: Option<(u64, u32)> = None;
        let mut active: Vec<String> = Vec::new();
        let mut ended_by_orchestrator: Vec<String> = Vec::new();
        for e in events {
            match e {
                Event::Call(n) => { let id = format!("call{n}"); active.push(id.clone()); o.handle_interaction_started(now, &id, Source::Call) }
                Event::Layer(n) => { let id = format!("layer{n}"); active.push(id.clone()); o.handle_interaction_started(now, &id, Source::CollaborationLayer) }
                Event::End(n) => {
                    for id in [format!("call{n}"), format!("layer{n}")] {
                        active.retain(|a| *a != id);
                        o.handle_interaction_ended(now, &id);
                    }
                }
                Event::Ready => if let Some((r, a)) = launched { o.handle_recorder_ready(now, r, a) },
                Event::Durable => if let Some((r, a)) = launched { o.handle_fragment_durable(now, r, a) },
                Event::Crash => if let Some((r, a)) = launched { o.handle_recorder_failed(now, r, a, Failure::Crashed) },
                Event::Storage => if let Some((r, a)) = launched { o.handle_recorder_failed(now, r, a, Failure::Storage) },
                Event::Done => if let Some(r) = stopping.first().copied() { o.handle_recorder_done(now, r) },
                Event::Start(n) => { let _ = o.handle_start_request(now, requester(n)); }
                Event::Stop(n) => { let _ = o.handle_stop_request(now, requester(n)); }
                Event::Wait(ms) => {
                    let to = now + Duration::from_millis(u64::from(ms) * 100);
                    while let Some(t) = o.poll_timeout().filter(|t| *t <= to) {
                        o.handle_timeout(t);
                    }
                    now = to;
                }
            }
            while let Some(action) = o.poll_action() {
                match action {
                    Action::NewRecording { recording, .. } => {
                        prop_assert!(open.is_empty(), "#{recording} created while {open:?} is open");
                        open.push(recording);
                    }
                    Action::Launch { recording, attempt } => launched = Some((recording, attempt)),
                    Action::Finish { recording, .. } => {
                        prop_assert!(open.contains(&recording), "#{recording} finished twice");
                        open.retain(|r| *r != recording);
                        stopping.retain(|r| *r != recording);
                    }
                    Action::Stop { recording } => stopping.push(recording),
                    Action::EndInteractions(ids) => {
                        for id in &ids {
                            active.retain(|a| a != id);
                            o.handle_interaction_ended(now, id);
                        }
                        ended_by_orchestrator.extend(ids);
                    }
                    _ => {}
                }
            }
            prop_assert!(open.len() <= 1, "open recordings: {open:?}");
            if !o.held().is_empty() {
                prop_assert!(
                    matches!(o.state(), State::Initializing | State::WaitingReady),
                    "media held in state {:?}", o.state()
                );
            }
            if let Some(at) = o.next_attempt_at() {
                prop_assert!(at.saturating_duration_since(now) <= cap, "a delay above the cap");
            }
        }
        // Everything ends, and the recorder finishes: nothing stays held or open.
        for id in active.clone() {
            o.handle_interaction_ended(now, &id);
        }
        if let Some(r) = o.recording() {
            o.handle_recorder_done(now, r);
        }
        while let Some(action) = o.poll_action() {
            if let Action::Finish { recording, .. } = action {
                open.retain(|r| *r != recording);
            }
        }
        prop_assert!(o.held().is_empty(), "held after everything ended: {:?}", o.held());
        prop_assert!(open.is_empty() || o.recording().is_some(), "never finished: {open:?}");
    }
}

#[test]
fn new_settings_apply_between_recordings_never_to_a_running_one() {
    let mut sim = Sim::new(settings(&[("recordingEnabled", "false")]));
    sim.call("c");
    assert_eq!(sim.o.recording(), None, "recording is off");
    // Switched on: the next triggering interaction records.
    assert!(sim.o.set_settings(settings(&[])));
    sim.layer("share");
    assert_eq!(sim.o.recording(), Some(1));
    assert!(
        !sim.o
            .set_settings(settings(&[("recordingEnabled", "false")]))
    );
    assert!(
        sim.o.settings().enabled,
        "the running recording keeps its settings"
    );
}

#[test]
fn a_recorder_that_does_not_finish_after_stop_is_killed_and_its_recording_finished() {
    let mut sim = Sim::new(settings(&[("recordingStartMode", "\"ASYNCHRONOUS\"")]));
    sim.call("c").at(11).ready(1, 2);
    // A late failure of an earlier attempt's recorder changes nothing while #1.2 stops.
    sim.end("c").failed(1, 1, Failure::Crashed);
    assert_eq!(sim.o.recording(), Some(1));
    sim.take();
    sim.at(60);
    assert_eq!(
        sim.take(),
        ["t=41s kill #1.2", "t=41s finish #1 ABORT_TIMEOUT"],
        "30 s after stop"
    );
}

#[test]
fn a_call_ending_while_retry_tries_in_the_background_leaves_the_recording_failed() {
    // Between two background attempts.
    let mut sim = Sim::new(settings(&[]));
    sim.call("c").at(22);
    assert_eq!(sim.o.state(), State::Failed, "attempts exhausted at 21 s");
    sim.take();
    sim.end("c");
    assert_eq!(sim.take(), ["t=22s finish #1 ABORT_TIMEOUT"]);
    assert_eq!(sim.o.state(), State::Failed);
    // During one (the state showed WAITING_READY again).
    let mut sim = Sim::new(settings(&[]));
    sim.call("c").at(25);
    assert_eq!(sim.o.state(), State::WaitingReady);
    sim.take();
    sim.end("c");
    assert_eq!(
        sim.take(),
        [
            "t=25s kill #1.3",
            "t=25s finish #1 ABORT_TIMEOUT",
            "t=25s state FAILED"
        ]
    );
}

/// A recorder may make a block durable before it says it is ready (it starts its files as
/// media arrives): the recording is STARTED as soon as it is ready. A block of an attempt the
/// orchestrator gave up on does not count for the next one.
#[test]
fn a_block_durable_before_ready_starts_the_recording_at_ready() {
    let mut sim = Sim::new(settings(&[]));
    sim.call("c").at(1).durable(1, 1);
    assert!(!sim.take().iter().any(|l| l.contains("STARTED")));
    sim.ready(1, 1);
    assert_eq!(
        sim.take(),
        [
            "t=1s release c",
            "t=1s state READY",
            "t=1s webhook started #1",
            "t=1s state STARTED"
        ]
    );

    // Attempt 1 made a block durable but never got ready: attempt 2 does not inherit it.
    let mut sim = Sim::new(settings(&[]));
    sim.call("c").durable(1, 1).at(12);
    sim.durable(1, 1).ready(1, 2);
    let log = sim.take();
    assert!(log.iter().any(|l| l.contains("launch #1.2")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains("STARTED")), "{log:?}");
    sim.durable(1, 2);
    assert_eq!(
        sim.take(),
        ["t=12s webhook started #1", "t=12s state STARTED"]
    );
}
