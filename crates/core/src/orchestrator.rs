//! The recording orchestrator of one conversation (SPEC §3–4), free of I/O: it takes what
//! happens (interactions starting and ending, start and stop requests, what recorders report,
//! time) and says what to do (create a recording, launch a recorder, hold or release media, end
//! interactions, emit webhooks, change the visible state, set timers). The server carries the
//! actions out and reports back.
//!
//! Shape, as in str0m and the media core: `handle_*(now, …)` to feed, [`Orchestrator::poll_action`]
//! to drain, [`Orchestrator::poll_timeout`] to learn when to call
//! [`Orchestrator::handle_timeout`].
//!
//! The rules, in brief:
//! - AUTOMATIC: an interaction of a triggering source starts a recording when none runs. MANUAL:
//!   an admitted participant (or an admin) starts one; it needs an active interaction.
//! - One attempt = launch a recorder and wait `initializationTimeout` for it to be ready. After a
//!   failed attempt the next follows after 1 s, 2 s, 4 s, … capped at `recordingMaxRetryDelay`;
//!   the sequence restarts once a recording has run for [`DELAY_RESET_AFTER`].
//! - SYNCHRONOUS start (automatic recordings): the interactions' media is held until the recorder
//!   is ready, or until the attempts are exhausted.
//! - Failover (automatic recordings only; manual ones fail and report): RETRY keeps trying in the
//!   background (a recording that fails mid-way is finished and a new one started); ABORT ends
//!   every interaction (`RECORDING_DENIED`). Storage failures stop all attempts in both modes.
//! - End: automatic recordings end when no interaction of a triggering source is active; manual
//!   ones when stopped or when no interaction at all is active.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::RecordingSettings;

/// How long a recorder has to finish its files after `stop` before it is killed and its
/// recording finished from what is durable.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// After a recording has run this long, the retry delays start again from 1 s (SPEC §4).
pub const DELAY_RESET_AFTER: Duration = Duration::from_secs(60);

/// What kind of interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An audio or audio/video call.
    Call,
    /// A collaboration layer (screen sharing, co-browsing).
    CollaborationLayer,
}

/// How a recording was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// By an interaction starting.
    Automatic,
    /// By `startRecording`.
    Manual,
}

/// The conversation's recording state (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Never recorded.
    Idle,
    /// A recording is to start (an attempt is due).
    Initializing,
    /// A recorder was launched; waiting for it to be ready.
    WaitingReady,
    /// The recorder is ready.
    Ready,
    /// A fragment is durable.
    Started,
    /// The last recording ended normally.
    Stopped,
    /// The last recording failed (RETRY may still be trying in the background).
    Failed,
}

impl State {
    /// As in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "IDLE",
            State::Initializing => "INITIALIZING",
            State::WaitingReady => "WAITING_READY",
            State::Ready => "READY",
            State::Started => "STARTED",
            State::Stopped => "STOPPED",
            State::Failed => "FAILED",
        }
    }
}

/// How a recorder failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It exited or its connection was lost.
    Crashed,
    /// The object store or the spool failed (or the store check did when it would start).
    Storage,
}

/// A recording, numbered by the orchestrator (the server maps it to its stored id).
pub type RecordingNo = u64;

/// What a webhook says (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Webhook {
    /// `conversation.recording_started`.
    Started {
        /// The recording.
        recording: RecordingNo,
    },
    /// `conversation.recording_failed`.
    Failed {
        /// The recording.
        recording: RecordingNo,
        /// Why (an end reason).
        reason: &'static str,
    },
}

/// What the server should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create recording `recording` (state INITIALIZING in the metadata).
    NewRecording {
        /// Its number.
        recording: RecordingNo,
        /// How it was started.
        trigger: Trigger,
    },
    /// Check the store, make an entry point and launch a recorder: attempt `attempt` (from 1).
    /// A failed store check is reported as [`Failure::Storage`].
    Launch {
        /// The recording.
        recording: RecordingNo,
        /// The attempt.
        attempt: u32,
    },
    /// Stop this attempt's recorder at once (it was not ready in time, or is not wanted).
    Kill {
        /// The recording.
        recording: RecordingNo,
        /// The attempt.
        attempt: u32,
    },
    /// Ask the recorder to finish its files (the end rule, or a stop request).
    Stop {
        /// The recording.
        recording: RecordingNo,
    },
    /// Close the recording with this end reason from what was made durable (every recording
    /// that was created is closed by exactly one `Finish`).
    Finish {
        /// The recording.
        recording: RecordingNo,
        /// `NORMAL` or an `ABORT_*` reason.
        end_reason: &'static str,
    },
    /// Forward an interaction's media to no participant.
    Hold(String),
    /// Forward it again.
    Release(String),
    /// End these interactions (reason `RECORDING_DENIED`).
    EndInteractions(Vec<String>),
    /// Send a webhook.
    Webhook(Webhook),
    /// The visible state changed.
    State(State),
}

/// Why a start or stop request was refused (SPEC §5's codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A recording runs already.
    #[error("a recording is running")]
    RecordingRunning,
    /// No call or layer is active.
    #[error("no call or collaboration layer is active")]
    NothingToRecord,
    /// The caller may not.
    #[error("not allowed by the conversation's configuration")]
    RecordingDenied,
    /// No recording runs.
    #[error("no recording is running")]
    RecordingNotRunning,
}

/// Who asks to start or stop a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    /// An administrator of the account (or the global admin).
    Admin,
    /// The assigned agent.
    AssignedAgent,
    /// Another agent.
    SecondaryAgent,
    /// A visitor.
    Visitor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the next attempt.
    Backoff { until: Instant },
    /// An attempt's recorder was launched (`durable`: it made a block durable already; a
    /// recorder may start its files before it says it is ready).
    WaitingReady {
        attempt: u32,
        deadline: Instant,
        durable: bool,
    },
    /// The recorder is ready (`started`: a fragment is durable).
    Running {
        attempt: u32,
        since: Instant,
        started: bool,
    },
    /// Asked to stop; waiting for it to finish (killed and finished at `deadline`).
    Stopping { attempt: u32, deadline: Instant },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Recording {
    no: RecordingNo,
    trigger: Trigger,
    phase: Phase,
    /// Attempts made for this recording.
    attempts: u32,
    /// The attempts were exhausted (RETRY goes on in the background), with the last
    /// failure's end reason.
    exhausted: Option<&'static str>,
    /// Media is held for it.
    holding: bool,
}

/// One conversation's orchestrator. See the [module docs](self).
#[derive(Debug)]
pub struct Orchestrator {
    settings: RecordingSettings,
    interactions: Vec<(String, Source)>,
    held: Vec<String>,
    recording: Option<Recording>,
    next_recording: RecordingNo,
    /// Failed attempts since the delays last restarted.
    failures_in_a_row: u32,
    /// A recording to start once the one finishing now is finished: a triggering interaction
    /// started (automatic) or someone asked to start (manual) while it was stopping.
    start_when_finished: Option<Trigger>,
    state: State,
    actions: VecDeque<Action>,
}

impl Orchestrator {
    /// An orchestrator for a conversation with these settings.
    pub fn new(settings: RecordingSettings) -> Self {
        Self {
            settings,
            interactions: Vec::new(),
            held: Vec::new(),
            recording: None,
            next_recording: 1,
            failures_in_a_row: 0,
            start_when_finished: None,
            state: State::Idle,
            actions: VecDeque::new(),
        }
    }

    /// Its settings.
    pub fn settings(&self) -> &RecordingSettings {
        &self.settings
    }

    /// Takes new settings (a configuration change) while nothing is being recorded; a running
    /// recording keeps the settings it started with, and this returns `false`.
    pub fn set_settings(&mut self, settings: RecordingSettings) -> bool {
        if self.recording.is_some() {
            return false;
        }
        self.settings = settings;
        true
    }

    /// The visible state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The recording being made, if any.
    pub fn recording(&self) -> Option<RecordingNo> {
        self.recording.as_ref().map(|r| r.no)
    }

    /// When the next attempt starts, while waiting between attempts.
    pub fn next_attempt_at(&self) -> Option<Instant> {
        match self.recording.as_ref()?.phase {
            Phase::Backoff { until } => Some(until),
            _ => None,
        }
    }

    /// Interactions whose media is held.
    pub fn held(&self) -> &[String] {
        &self.held
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.recording.as_ref()?.phase {
            Phase::Backoff { until } => Some(until),
            Phase::WaitingReady { deadline, .. } => Some(deadline),
            Phase::Stopping { deadline, .. } => Some(deadline),
            Phase::Running { .. } => None,
        }
    }

    /// A call or layer started.
    pub fn handle_interaction_started(&mut self, now: Instant, id: &str, source: Source) {
        if self.interactions.iter().any(|(i, _)| i == id) {
            return;
        }
        self.interactions.push((id.to_owned(), source));
        let waiting_sync = self.recording.as_ref().is_some_and(|r| r.holding);
        if waiting_sync {
            self.hold(id);
        }
        if self.settings.enabled && self.settings.automatic && self.triggers(source) {
            match &self.recording {
                None => self.start(now, Trigger::Automatic),
                Some(r) if matches!(r.phase, Phase::Stopping { .. }) => {
                    self.start_when_finished = Some(Trigger::Automatic)
                }
                Some(_) => {}
            }
        }
    }

    /// A call or layer ended.
    pub fn handle_interaction_ended(&mut self, now: Instant, id: &str) {
        self.interactions.retain(|(i, _)| i != id);
        if let Some(index) = self.held.iter().position(|h| h == id) {
            self.held.remove(index);
        }
        let Some(r) = &self.recording else {
            return;
        };
        let keep_going = match r.trigger {
            Trigger::Automatic => self.interactions.iter().any(|(_, s)| self.triggers(*s)),
            Trigger::Manual => !self.interactions.is_empty(),
        };
        if !keep_going {
            self.start_when_finished = None;
            self.end_normally(now);
        }
    }

    /// `startRecording` (always asynchronous). While the last recording is still stopping
    /// (its recorder finishing the file) the request is accepted and the new recording starts
    /// as soon as that one is finished: a user who just pressed stop can press start again.
    pub fn handle_start_request(
        &mut self,
        now: Instant,
        requester: Requester,
    ) -> Result<(), Refusal> {
        if !self.settings.enabled || self.settings.automatic || !self.may_manage(requester) {
            return Err(Refusal::RecordingDenied);
        }
        if self.interactions.is_empty() {
            return Err(Refusal::NothingToRecord);
        }
        match &self.recording {
            None => self.start(now, Trigger::Manual),
            Some(r)
                if matches!(r.phase, Phase::Stopping { .. })
                    && self.start_when_finished.is_none() =>
            {
                self.start_when_finished = Some(Trigger::Manual);
            }
            Some(_) => return Err(Refusal::RecordingRunning),
        }
        Ok(())
    }

    /// `stopRecording`: a manual recording by an admitted participant or an admin; an automatic
    /// one by an admin only.
    pub fn handle_stop_request(
        &mut self,
        now: Instant,
        requester: Requester,
    ) -> Result<(), Refusal> {
        let Some(r) = &self.recording else {
            return Err(Refusal::RecordingNotRunning);
        };
        if matches!(r.phase, Phase::Stopping { .. }) {
            return Err(Refusal::RecordingNotRunning);
        }
        let allowed = requester == Requester::Admin
            || (r.trigger == Trigger::Manual && self.may_manage(requester));
        if !allowed {
            return Err(Refusal::RecordingDenied);
        }
        self.end_normally(now);
        Ok(())
    }

    /// The recorder of `attempt` is ready.
    pub fn handle_recorder_ready(&mut self, now: Instant, recording: RecordingNo, attempt: u32) {
        let Some(r) = self.recording.as_mut().filter(|r| r.no == recording) else {
            return;
        };
        let Phase::WaitingReady {
            attempt: a,
            durable,
            ..
        } = r.phase
        else {
            return;
        };
        if a != attempt {
            return;
        }
        r.phase = Phase::Running {
            attempt,
            since: now,
            started: false,
        };
        r.exhausted = None;
        r.holding = false;
        self.release_all();
        self.set_state(State::Ready);
        if durable {
            self.handle_fragment_durable(now, recording, attempt);
        }
    }

    /// A block of attempt `attempt` of the recording is durable: the first one makes the
    /// recording STARTED (once its recorder is ready).
    pub fn handle_fragment_durable(&mut self, _now: Instant, recording: RecordingNo, attempt: u32) {
        let Some(r) = self.recording.as_mut().filter(|r| r.no == recording) else {
            return;
        };
        match &mut r.phase {
            Phase::WaitingReady {
                attempt: a,
                durable,
                ..
            } if *a == attempt => *durable = true,
            Phase::Running {
                attempt: a,
                started,
                ..
            } if *a == attempt && !*started => {
                *started = true;
                let no = r.no;
                self.actions
                    .push_back(Action::Webhook(Webhook::Started { recording: no }));
                self.set_state(State::Started);
            }
            _ => {}
        }
    }

    /// The recorder finished its files after a stop.
    pub fn handle_recorder_done(&mut self, now: Instant, recording: RecordingNo) {
        if self
            .recording
            .as_ref()
            .is_some_and(|r| r.no == recording && matches!(r.phase, Phase::Stopping { .. }))
        {
            self.recording = None;
            self.actions.push_back(Action::Finish {
                recording,
                end_reason: "NORMAL",
            });
            self.after_finished(now);
        }
    }

    /// The recorder of `attempt` failed (or its launch did).
    pub fn handle_recorder_failed(
        &mut self,
        now: Instant,
        recording: RecordingNo,
        attempt: u32,
        failure: Failure,
    ) {
        let Some(r) = self.recording.as_ref().filter(|r| r.no == recording) else {
            return;
        };
        match r.phase {
            Phase::WaitingReady { attempt: a, .. } if a == attempt => {
                self.attempt_failed(now, failure, "ABORT_UNEXPECTED")
            }
            Phase::Running {
                attempt: a, since, ..
            } if a == attempt => self.failed_midway(now, since, failure),
            // It was stopping anyway: what is durable is what there is.
            Phase::Stopping { attempt: a, .. } if a == attempt => {
                self.recording = None;
                self.actions.push_back(Action::Finish {
                    recording,
                    end_reason: end_reason(failure),
                });
                self.after_finished(now);
            }
            _ => {}
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(r) = &self.recording else {
            return;
        };
        match r.phase {
            Phase::Backoff { until } if until <= now => self.launch_next(now),
            Phase::Stopping { attempt, deadline } if deadline <= now => {
                // It did not finish its files in time: what is durable is what there is.
                let no = r.no;
                self.recording = None;
                self.actions.push_back(Action::Kill {
                    recording: no,
                    attempt,
                });
                self.actions.push_back(Action::Finish {
                    recording: no,
                    end_reason: "ABORT_TIMEOUT",
                });
                self.after_finished(now);
            }
            Phase::WaitingReady {
                attempt, deadline, ..
            } if deadline <= now => {
                let no = r.no;
                self.actions.push_back(Action::Kill {
                    recording: no,
                    attempt,
                });
                self.attempt_failed(now, Failure::Crashed, "ABORT_TIMEOUT");
            }
            _ => {}
        }
    }

    fn triggers(&self, source: Source) -> bool {
        match source {
            Source::Call => self.settings.triggered_by_calls,
            Source::CollaborationLayer => self.settings.triggered_by_layers,
        }
    }

    fn may_manage(&self, requester: Requester) -> bool {
        admitted(&self.settings, requester)
    }

    fn start(&mut self, now: Instant, trigger: Trigger) {
        let no = self.next_recording;
        self.next_recording += 1;
        let holding = trigger == Trigger::Automatic && self.settings.synchronous;
        self.recording = Some(Recording {
            no,
            trigger,
            phase: Phase::Backoff { until: now },
            attempts: 0,
            exhausted: None,
            holding,
        });
        self.actions.push_back(Action::NewRecording {
            recording: no,
            trigger,
        });
        if holding {
            let ids: Vec<String> = self.interactions.iter().map(|(i, _)| i.clone()).collect();
            for id in ids {
                self.hold(&id);
            }
        }
        self.launch_next(now);
    }

    fn launch_next(&mut self, now: Instant) {
        let timeout = Duration::from_secs(u64::from(self.settings.initialization_timeout_s));
        let Some(r) = self.recording.as_mut() else {
            return;
        };
        r.attempts += 1;
        let attempt = r.attempts;
        r.phase = Phase::WaitingReady {
            attempt,
            deadline: now + timeout,
            durable: false,
        };
        let no = r.no;
        self.set_state(State::Initializing);
        self.actions.push_back(Action::Launch {
            recording: no,
            attempt,
        });
        self.set_state(State::WaitingReady);
    }

    /// The delay before the next attempt after `failures` failures in a row.
    fn delay(&self, failures: u32) -> Duration {
        let cap = u64::from(self.settings.max_retry_delay_s);
        let doubled = 1u64
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u64::MAX);
        Duration::from_secs(doubled.min(cap))
    }

    fn attempt_failed(&mut self, now: Instant, failure: Failure, reason: &'static str) {
        self.failures_in_a_row += 1;
        let Some(r) = self.recording.as_ref() else {
            return;
        };
        let (no, trigger, attempts, exhausted) =
            (r.no, r.trigger, r.attempts, r.exhausted.is_some());
        if failure == Failure::Storage {
            // No further attempts in either mode (SPEC §4).
            return self.give_up(no, trigger, "ABORT_BLOBSTORE_FAILURE");
        }
        let max = self.settings.max_attempts;
        if attempts < max || exhausted {
            // More attempts (or RETRY in the background after exhaustion).
            let until = now + self.delay(self.failures_in_a_row);
            if let Some(r) = self.recording.as_mut() {
                r.phase = Phase::Backoff { until };
            }
            return;
        }
        // Attempts exhausted.
        if trigger == Trigger::Automatic && self.settings.retry {
            self.actions.push_back(Action::Webhook(Webhook::Failed {
                recording: no,
                reason,
            }));
            self.set_state(State::Failed);
            let until = now + self.delay(self.failures_in_a_row);
            if let Some(r) = self.recording.as_mut() {
                r.exhausted = Some(reason);
                r.holding = false;
                r.phase = Phase::Backoff { until };
            }
            self.release_all();
        } else {
            self.give_up(no, trigger, reason);
        }
    }

    fn failed_midway(&mut self, now: Instant, since: Instant, failure: Failure) {
        let Some(r) = self.recording.take() else {
            return;
        };
        if now.saturating_duration_since(since) >= DELAY_RESET_AFTER {
            self.failures_in_a_row = 0;
        }
        let reason = end_reason(failure);
        self.actions.push_back(Action::Finish {
            recording: r.no,
            end_reason: reason,
        });
        self.actions.push_back(Action::Webhook(Webhook::Failed {
            recording: r.no,
            reason,
        }));
        self.set_state(State::Failed);
        if r.trigger == Trigger::Manual {
            return;
        }
        match (failure, self.settings.retry) {
            // No further attempts after a storage failure (SPEC §4); RETRY keeps the calls.
            (Failure::Storage, true) => return,
            (_, false) => return self.end_interactions(),
            (Failure::Crashed, true) => {}
        }
        // RETRY: a new recording, after the next delay; the gap is unrecorded.
        self.failures_in_a_row += 1;
        let no = self.next_recording;
        self.next_recording += 1;
        let until = now + self.delay(self.failures_in_a_row);
        self.recording = Some(Recording {
            no,
            trigger: Trigger::Automatic,
            phase: Phase::Backoff { until },
            attempts: 0,
            exhausted: None,
            holding: false,
        });
        self.actions.push_back(Action::NewRecording {
            recording: no,
            trigger: Trigger::Automatic,
        });
    }

    /// No more attempts: the recording fails; ABORT (automatic) ends the interactions.
    fn give_up(&mut self, no: RecordingNo, trigger: Trigger, reason: &'static str) {
        self.recording = None;
        self.actions.push_back(Action::Finish {
            recording: no,
            end_reason: reason,
        });
        self.actions.push_back(Action::Webhook(Webhook::Failed {
            recording: no,
            reason,
        }));
        self.set_state(State::Failed);
        self.release_all();
        if trigger == Trigger::Automatic && !self.settings.retry {
            self.end_interactions();
        }
    }

    /// The end rule or a stop request: stop a running recorder, or call off a start.
    fn end_normally(&mut self, now: Instant) {
        let Some(r) = self.recording.as_mut() else {
            return;
        };
        let (no, exhausted) = (r.no, r.exhausted);
        // A recording ended on purpose breaks any streak of failures.
        self.failures_in_a_row = 0;
        match r.phase {
            Phase::Running { attempt, .. } => {
                r.phase = Phase::Stopping {
                    attempt,
                    deadline: now + STOP_TIMEOUT,
                };
                self.actions.push_back(Action::Stop { recording: no });
                self.set_state(State::Stopped);
            }
            Phase::WaitingReady { attempt, .. } => {
                self.actions.push_back(Action::Kill {
                    recording: no,
                    attempt,
                });
                self.call_off(now, no, exhausted);
            }
            Phase::Backoff { .. } => self.call_off(now, no, exhausted),
            Phase::Stopping { .. } => {}
        }
        self.release_all();
    }

    /// A recording that never got a ready recorder ends with nothing recorded; one whose
    /// attempts were exhausted (RETRY was still trying) ends as failed.
    fn call_off(&mut self, now: Instant, no: RecordingNo, exhausted: Option<&'static str>) {
        self.recording = None;
        self.actions.push_back(Action::Finish {
            recording: no,
            end_reason: exhausted.unwrap_or("NORMAL"),
        });
        self.set_state(if exhausted.is_some() {
            State::Failed
        } else {
            State::Stopped
        });
        self.after_finished(now);
    }

    fn after_finished(&mut self, now: Instant) {
        let Some(trigger) = self.start_when_finished.take() else {
            return;
        };
        let still_wanted = self.settings.enabled
            && match trigger {
                Trigger::Automatic => {
                    self.settings.automatic
                        && self.interactions.iter().any(|(_, s)| self.triggers(*s))
                }
                Trigger::Manual => !self.settings.automatic && !self.interactions.is_empty(),
            };
        if still_wanted {
            self.start(now, trigger);
        }
    }

    fn end_interactions(&mut self) {
        let ids: Vec<String> = self.interactions.iter().map(|(i, _)| i.clone()).collect();
        self.release_all();
        if !ids.is_empty() {
            self.actions.push_back(Action::EndInteractions(ids));
        }
    }

    fn hold(&mut self, id: &str) {
        if !self.held.iter().any(|h| h == id) {
            self.held.push(id.to_owned());
            self.actions.push_back(Action::Hold(id.to_owned()));
        }
    }

    fn release_all(&mut self) {
        for id in std::mem::take(&mut self.held) {
            self.actions.push_back(Action::Release(id));
        }
    }

    fn set_state(&mut self, state: State) {
        if self.state != state {
            self.state = state;
            self.actions.push_back(Action::State(state));
        }
    }
}

/// The end reason of a recording that a failure ended.
fn end_reason(failure: Failure) -> &'static str {
    match failure {
        Failure::Crashed => "ABORT_UNEXPECTED",
        Failure::Storage => "ABORT_BLOBSTORE_FAILURE",
    }
}

/// Whether `allowManualRecording` (SPEC §3) admits `requester` to start and stop recordings by
/// hand (admins always are).
pub fn admitted(settings: &RecordingSettings, requester: Requester) -> bool {
    match (settings.allow_manual_recording.as_str(), requester) {
        (_, Requester::Admin) => true,
        (_, Requester::Visitor) | ("NONE", _) => false,
        ("ASSIGNED_AGENT", Requester::AssignedAgent) => true,
        ("ALL_AGENTS", Requester::AssignedAgent | Requester::SecondaryAgent) => true,
        _ => false,
    }
}
