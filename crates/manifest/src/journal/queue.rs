//! The line from the journal's handles to its writer: a queue that wakes the writer only when it has
//! something to do now.
//!
//! Every wake-up of the writer thread is a context switch, and on a busy machine the woken thread may
//! wait for a core. So the writer is woken by an append someone waits on (and by `close`, and by the
//! last handle going away), and not by one nobody waits on: that one is written with the next group,
//! or when the writer's own timer comes round ([`WHENEVER`]). With a group window
//! ([`JournalOptions::group_wait`](super::JournalOptions::group_wait)), appends that arrive while the
//! writer gathers a group do not wake it either, until the group is full.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::writer::Command;

/// How soon the writer must act on a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Urgency {
    /// Someone waits on it before going on (an append to wait on, a close): a group goes now, or when
    /// its window allows.
    Now,
    /// Nobody needs it at once: it goes with the next group, within [`WHENEVER`] at the latest.
    Whenever,
}

/// The longest a record nobody needs at once waits in the queue before its group goes (an
/// [`append_nowait`](super::Journal::append_nowait), or an [`append_lazy`](super::Journal::append_lazy)
/// without a shorter limit of its own).
pub const WHENEVER: Duration = Duration::from_millis(50);

/// The queue, shared by the handles and the writer.
pub(super) struct Queue {
    state: Mutex<State>,
    wake: Condvar,
    /// How long a group someone waits on may wait for company, and how many make it full.
    group_wait: Duration,
    group_size: usize,
}

#[derive(Default)]
struct State {
    commands: Vec<Command>,
    /// The lines of the queued appends, one after the other (each [`Command::Append`] says where its
    /// line ends). One buffer the writer swaps for its own, rather than a line allocated per record
    /// and freed by another thread (`perf`: glibc's cross-thread frees of those ~1.3 KB lines were
    /// most of the journal's allocator time).
    bytes: Vec<u8>,
    /// Commands queued with [`Urgency::Now`], and when the first of them came.
    urgent: usize,
    urgent_since: Option<Instant>,
    /// When the first command with [`Urgency::Whenever`] must be taken at the latest.
    due: Option<Instant>,
    /// Take what is queued at once (a group larger than a batch, an append waited on too long).
    hurry: bool,
    /// Journal handles alive.
    handles: usize,
    /// The writer is gone: nothing is accepted any more.
    shut: bool,
    /// The writer is parked until this instant (`None`: not parked), gathering a group or idle.
    parked: Option<(Instant, bool)>,
}

impl Queue {
    pub(super) fn new(group_wait: Duration, group_size: usize) -> Queue {
        Queue {
            state: Mutex::new(State { handles: 0, ..State::default() }),
            wake: Condvar::new(),
            group_wait,
            group_size: group_size.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `command`, and for an append its encoded `line`; gives the command back when the
    /// writer is gone.
    pub(super) fn push(&self, line: &[u8], mut command: Command, urgency: Urgency) -> Result<(), Command> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.shut {
            return Err(command);
        }
        if let Command::Append { end, .. } = &mut command {
            state.bytes.extend_from_slice(line);
            *end = state.bytes.len();
        }
        state.commands.push(command);
        let wake = match urgency {
            Urgency::Now => {
                state.urgent += 1;
                state.urgent_since.get_or_insert(now);
                // Parked idle: wake. Gathering a group: only once it is full (its window's end is the
                // writer's own timer).
                state.parked.is_some_and(|(_, gathering)| !gathering || state.urgent >= self.group_size)
            }
            Urgency::Whenever => {
                let due = *state.due.get_or_insert(now + WHENEVER);
                state.parked.is_some_and(|(until, _)| due < until)
            }
        };
        self.wake_if(state, wake);
        Ok(())
    }

    /// Someone now waits on what is queued: it goes as if a record with [`Urgency::Now`] had just
    /// been queued (within the group window, or at once when the group is full).
    pub(super) fn urge(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        if state.commands.is_empty() {
            return;
        }
        state.urgent += 1;
        state.urgent_since.get_or_insert(now);
        let wake = state.parked.is_some_and(|(_, gathering)| !gathering || state.urgent >= self.group_size);
        self.wake_if(state, wake);
    }

    /// Asks the writer to take what is queued at once.
    pub(super) fn hurry(&self) {
        let mut state = self.lock();
        state.hurry = true;
        let parked = state.parked.is_some();
        self.wake_if(state, parked);
    }

    pub(super) fn add_handle(&self) {
        self.lock().handles += 1;
    }

    pub(super) fn drop_handle(&self) {
        let mut state = self.lock();
        state.handles = state.handles.saturating_sub(1);
        let wake = state.handles == 0 && state.parked.is_some();
        self.wake_if(state, wake);
    }

    fn wake_if(&self, mut state: MutexGuard<'_, State>, wake: bool) {
        if wake {
            // Woken once: later pushes need not notify again.
            state.parked = None;
            drop(state);
            self.wake.notify_one();
        }
    }

    /// The writer's side: waits until a group is due, and moves it (at most `max` commands) into
    /// `group`, their lines into `bytes` (which must be empty; each append's `end` then counts in
    /// `bytes`). Returns false, with nothing taken, once every handle is gone and nothing is queued.
    pub(super) fn next_group(&self, group: &mut Vec<Command>, bytes: &mut Vec<u8>, max: usize) -> bool {
        debug_assert!(bytes.is_empty());
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            let gone = state.handles == 0;
            let window_over = state.urgent_since.is_some_and(|since| now >= since + self.group_wait);
            let take = gone
                || state.hurry
                || state.commands.len() >= max
                || (state.urgent > 0 && (state.urgent >= self.group_size || window_over))
                || state.due.is_some_and(|due| now >= due);
            if take && !state.commands.is_empty() {
                let n = state.commands.len().min(max);
                group.extend(state.commands.drain(..n));
                take_lines(&mut state, group, bytes);
                if state.commands.is_empty() {
                    state.urgent = 0;
                    state.urgent_since = None;
                    state.due = None;
                    state.hurry = false;
                } else {
                    // The rest of a large group goes right after this one.
                    state.hurry = true;
                }
                return true;
            }
            if gone {
                return false;
            }
            state.hurry = false;
            let until = match (state.urgent_since, state.due) {
                (Some(since), due) => due.map_or(since + self.group_wait, |d| d.min(since + self.group_wait)),
                (None, Some(due)) => due,
                (None, None) => now + WHENEVER,
            };
            state.parked = Some((until, state.urgent > 0));
            let timeout = until.saturating_duration_since(now);
            state = self.wake.wait_timeout(state, timeout).unwrap_or_else(PoisonError::into_inner).0;
            state.parked = None;
        }
    }

    /// The writer stops: later pushes are refused, and what is queued is dropped (whoever waits on it
    /// hears that the journal is gone).
    pub(super) fn shut(&self) {
        let dropped = {
            let mut state = self.lock();
            state.shut = true;
            std::mem::take(&mut state.commands)
        };
        drop(dropped);
    }
}

/// Moves the lines of the appends just taken into `group` from the queue's buffer into `bytes`.
fn take_lines(state: &mut State, group: &[Command], bytes: &mut Vec<u8>) {
    if state.commands.is_empty() {
        // The usual case: everything queued goes, and the two buffers change places.
        std::mem::swap(bytes, &mut state.bytes);
        return;
    }
    let cut = group
        .iter()
        .rev()
        .find_map(|command| match command {
            Command::Append { end, .. } => Some(*end),
            Command::Close { .. } => None,
        })
        .unwrap_or(0);
    bytes.extend(state.bytes.drain(..cut));
    for command in &mut state.commands {
        if let Command::Append { end, .. } = command {
            *end -= cut;
        }
    }
}
