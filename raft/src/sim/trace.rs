//! The event trace: a digest of every processed event (two runs of one seed must produce
//! the same digest: that is the determinism test) and, with `SimConfig::trace`, one
//! human-readable line per event.

use std::fmt::Write;

use crate::message::{Message, MessageKind};
use crate::sim::digest::Fnv64;
use crate::sim::event::Event;
use crate::sim::time::SimTime;

/// Digest and optional lines.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    digest: Fnv64,
    lines: Option<Vec<String>>,
}

impl Trace {
    pub(crate) fn new(keep_lines: bool) -> Trace {
        Trace {
            digest: Fnv64::default(),
            lines: keep_lines.then(Vec::new),
        }
    }

    pub(crate) fn digest(&self) -> u64 {
        self.digest.finish()
    }

    pub(crate) fn take_lines(&mut self) -> Vec<String> {
        self.lines.take().unwrap_or_default()
    }

    /// Folds one event into the digest (and the lines).
    pub(crate) fn record(&mut self, step: u64, at: SimTime, event: &Event) {
        self.digest.write_u64(at.0);
        let (code, a, b) = match event {
            Event::Tick(node) => (1, node.0, 0),
            Event::Deliver(m) => {
                self.record_message(m);
                (2, m.from.0, m.to.0)
            }
            Event::SyncDone {
                node,
                incarnation,
                records,
            } => (3, node.0, incarnation.wrapping_mul(1 << 32) ^ records),
            Event::ClientWake(client) => (4, u64::from(client.0), 0),
            Event::ClientTimeout(client, op) => (5, u64::from(client.0), op.0),
            Event::Chaos => (6, 0, 0),
            Event::Restart(node) => (7, node.0, 0),
            Event::CrashDuringSync(node) => (9, node.0, 0),
            Event::Heal => (8, 0, 0),
        };
        self.digest.write_u64(code);
        self.digest.write_u64(a);
        self.digest.write_u64(b);
        if let Some(lines) = &mut self.lines {
            lines.push(format!("#{step} {at} {}", describe(event)));
        }
    }

    /// Adds a free-form note (fault actions, violations) to the lines and the digest.
    pub(crate) fn note(&mut self, at: SimTime, text: &str) {
        self.digest.write_bytes(text.as_bytes());
        if let Some(lines) = &mut self.lines {
            lines.push(format!("   {at} {text}"));
        }
    }

    fn record_message(&mut self, m: &Message) {
        for value in [
            m.kind as u64,
            m.term.0,
            m.log_term.0,
            m.index.0,
            m.commit.0,
            m.entries.len() as u64,
            u64::from(m.reject),
        ] {
            self.digest.write_u64(value);
        }
    }
}

fn describe(event: &Event) -> String {
    match event {
        Event::Tick(node) => format!("tick {node}"),
        Event::Deliver(m) => format!("deliver {}", describe_message(m)),
        Event::SyncDone {
            node,
            incarnation,
            records,
        } => format!("fsync done {node} (life {incarnation}) records<={records}"),
        Event::ClientWake(client) => format!("client c{} wakes", client.0),
        Event::ClientTimeout(client, op) => format!("client c{} times out op #{}", client.0, op.0),
        Event::Chaos => "chaos".to_string(),
        Event::Restart(node) => format!("restart {node}"),
        Event::CrashDuringSync(node) => format!("power loss at {node} during an fsync"),
        Event::Heal => "heal all links".to_string(),
    }
}

/// One-line rendering of a message, e.g. `Append n1->n2 t3 prev=i4/t2 entries=2 commit=i4`.
pub(crate) fn describe_message(m: &Message) -> String {
    let mut out = format!("{:?} {}->{} {}", m.kind, m.from, m.to, m.term);
    let _ = match m.kind {
        MessageKind::Append => write!(
            out,
            " prev={}/{} entries={} commit={}",
            m.index,
            m.log_term,
            m.entries.len(),
            m.commit
        ),
        MessageKind::AppendResponse if m.reject => {
            write!(
                out,
                " reject={} hint={}/{}",
                m.index, m.reject_hint, m.log_term
            )
        }
        MessageKind::AppendResponse => write!(out, " match={}", m.index),
        MessageKind::Vote | MessageKind::PreVote => write!(out, " last={}/{}", m.index, m.log_term),
        MessageKind::VoteResponse | MessageKind::PreVoteResponse => {
            write!(out, " {}", if m.reject { "rejected" } else { "granted" })
        }
        MessageKind::Heartbeat => write!(out, " commit={}", m.commit),
        MessageKind::Snapshot => write!(
            out,
            " snapshot={}",
            m.snapshot.as_ref().map_or(0, |s| s.meta.index.0)
        ),
        MessageKind::ReadIndexResponse => write!(out, " index={}", m.index),
        _ => Ok(()),
    };
    out
}
