//! The hub task: owns every watcher of the member, matches event batches from
//! the core against them, and catches unsynced watchers up from history.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keel_btree::{Event, EventKind};
use tokio::sync::mpsc;

use super::filter::Selection;
use super::{CATCH_UP_EVENTS_MAX, HUB_INBOX_BATCHES};
use crate::node::Shared;
use crate::proto::etcdserverpb::{ResponseHeader, WatchResponse};
use crate::proto::mvccpb;

/// How often unsynced watchers are advanced while there are any (etcd retries
/// its "victims", watchers whose channel was full, every 10 ms; waiting for
/// etcd's 100 ms syncWatchersLoop instead put 75-170 ms on the p99 of 1000
/// watchers).
const SYNC_INTERVAL: Duration = Duration::from_millis(10);
/// Most unsynced watchers advanced per sync round (etcd's maxWatchersPerSync).
const SYNC_WATCHERS_MAX: usize = 512;

/// The events of one applied batch, in revision order.
#[derive(Debug)]
pub(crate) struct EventBatch {
    /// The store revision before the batch, plus one.
    pub(crate) first_revision: i64,
    /// The store revision after the batch.
    pub(crate) last_revision: i64,
    pub(crate) events: Vec<Event>,
}

/// A watcher, as a stream registers it.
pub(crate) struct Registration {
    pub(crate) stream_id: u64,
    pub(crate) watch_id: i64,
    pub(crate) selection: Selection,
    /// First revision to deliver (>= 1).
    pub(crate) start_revision: i64,
    pub(crate) progress_notify: bool,
    /// The stream's event responses.
    pub(crate) sink: mpsc::Sender<WatchResponse>,
}

enum Command {
    Register(Registration),
    Cancel { stream_id: u64, watch_id: i64 },
    CloseStream { stream_id: u64 },
}

/// The edge's and the core's handle on the hub.
#[derive(Clone)]
pub(crate) struct WatchHubHandle {
    batches: mpsc::Sender<EventBatch>,
    commands: mpsc::UnboundedSender<Command>,
}

impl WatchHubHandle {
    /// Core side: hand over a batch without waiting. A full hub inbox drops
    /// the batch; the hub sees the revision gap and catches up from history.
    pub(crate) fn publish(&self, batch: EventBatch) {
        let _ = self.batches.try_send(batch);
    }

    pub(crate) fn register(&self, registration: Registration) {
        let _ = self.commands.send(Command::Register(registration));
    }

    pub(crate) fn cancel(&self, stream_id: u64, watch_id: i64) {
        let _ = self.commands.send(Command::Cancel {
            stream_id,
            watch_id,
        });
    }

    pub(crate) fn close_stream(&self, stream_id: u64) {
        let _ = self.commands.send(Command::CloseStream { stream_id });
    }
}

type WatcherKey = (u64, i64);

struct Watcher {
    selection: Selection,
    next_revision: i64,
    progress_notify: bool,
    /// Events were sent since the last progress tick (etcd elides the notify).
    sent_since_progress: bool,
    sink: mpsc::Sender<WatchResponse>,
}

/// The hub's state; run it with [`WatchHub::run`].
pub(crate) struct WatchHub {
    shared: Arc<Shared>,
    /// Every revision <= this has been handed to the synced watchers.
    hub_revision: i64,
    watchers: HashMap<WatcherKey, Watcher>,
    /// Synced watchers of exactly one key, by key.
    synced_keys: HashMap<Bytes, HashSet<WatcherKey>>,
    /// Synced watchers of a range.
    synced_ranges: HashSet<WatcherKey>,
    unsynced: HashSet<WatcherKey>,
    progress_interval: Duration,
}

/// Why a send to a watcher did not happen.
enum SendOutcome {
    Sent,
    Full,
    Closed,
}

impl WatchHub {
    /// Creates the hub and its handle; the hub starts at the published revision.
    pub(crate) fn new(
        shared: Arc<Shared>,
        progress_interval: Duration,
    ) -> (WatchHub, WatchHubHandle, HubInbox) {
        let (batches_tx, batches_rx) = mpsc::channel(HUB_INBOX_BATCHES);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let hub_revision = shared.published().view.revision();
        let hub = WatchHub {
            shared,
            hub_revision,
            watchers: HashMap::new(),
            synced_keys: HashMap::new(),
            synced_ranges: HashSet::new(),
            unsynced: HashSet::new(),
            progress_interval,
        };
        let handle = WatchHubHandle {
            batches: batches_tx,
            commands: commands_tx,
        };
        (
            hub,
            handle,
            HubInbox {
                batches: batches_rx,
                commands: commands_rx,
            },
        )
    }

    /// Runs until every handle is dropped.
    pub(crate) async fn run(mut self, mut inbox: HubInbox) {
        let mut progress_tick = tokio::time::interval(self.progress_interval);
        progress_tick.tick().await;
        // Armed only while some watcher is unsynced: an idle hub has no timer.
        let sync = tokio::time::sleep(SYNC_INTERVAL);
        tokio::pin!(sync);
        let mut sync_armed = false;
        loop {
            tokio::select! {
                batch = inbox.batches.recv() => match batch {
                    Some(batch) => self.on_batch(batch),
                    None => return,
                },
                command = inbox.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => return,
                },
                () = &mut sync, if sync_armed => {
                    sync_armed = false;
                    self.sync_unsynced();
                }
                _ = progress_tick.tick() => self.notify_progress(),
            }
            if !sync_armed && !self.unsynced.is_empty() {
                sync.as_mut()
                    .reset(tokio::time::Instant::now() + SYNC_INTERVAL);
                sync_armed = true;
            }
        }
    }

    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.shared.cluster_id,
            member_id: self.shared.member_id,
            revision,
            raft_term: self.shared.term(),
        })
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Register(r) => {
                let key = (r.stream_id, r.watch_id);
                let watcher = Watcher {
                    selection: r.selection,
                    next_revision: r.start_revision.max(1),
                    progress_notify: r.progress_notify,
                    sent_since_progress: false,
                    sink: r.sink,
                };
                let synced = watcher.next_revision > self.hub_revision;
                self.watchers.insert(key, watcher);
                if synced {
                    self.mark_synced(key);
                } else {
                    self.unsynced.insert(key);
                    self.sync_unsynced();
                }
            }
            Command::Cancel {
                stream_id,
                watch_id,
            } => self.remove((stream_id, watch_id)),
            Command::CloseStream { stream_id } => {
                let keys: Vec<_> = self
                    .watchers
                    .keys()
                    .filter(|(s, _)| *s == stream_id)
                    .copied()
                    .collect();
                for key in keys {
                    self.remove(key);
                }
            }
        }
    }

    fn mark_synced(&mut self, key: WatcherKey) {
        self.unsynced.remove(&key);
        let Some(watcher) = self.watchers.get(&key) else {
            return;
        };
        match watcher.selection.single_key() {
            Some(k) => {
                self.synced_keys.entry(k.clone()).or_default().insert(key);
            }
            None => {
                self.synced_ranges.insert(key);
            }
        }
    }

    fn mark_unsynced(&mut self, key: WatcherKey) {
        self.unlink_synced(key);
        self.unsynced.insert(key);
    }

    fn unlink_synced(&mut self, key: WatcherKey) {
        if let Some(watcher) = self.watchers.get(&key) {
            if let Some(k) = watcher.selection.single_key() {
                if let Some(set) = self.synced_keys.get_mut(k) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.synced_keys.remove(k);
                    }
                }
            }
        }
        self.synced_ranges.remove(&key);
    }

    fn remove(&mut self, key: WatcherKey) {
        self.unlink_synced(key);
        self.unsynced.remove(&key);
        self.watchers.remove(&key);
    }

    /// Live delivery to synced watchers.
    fn on_batch(&mut self, batch: EventBatch) {
        if batch.last_revision <= self.hub_revision {
            return; // already covered (after a gap, history served it)
        }
        if batch.first_revision > self.hub_revision + 1 {
            // Batches were dropped: everyone catches up from history.
            let synced: Vec<WatcherKey> = self
                .synced_ranges
                .iter()
                .chain(self.synced_keys.values().flatten())
                .copied()
                .collect();
            for key in synced {
                self.mark_unsynced(key);
            }
            self.hub_revision = batch.last_revision;
            self.sync_unsynced();
            return;
        }
        let mut matched: HashMap<WatcherKey, Vec<&Event>> = HashMap::new();
        for event in &batch.events {
            if let Some(keys) = self.synced_keys.get(&event.kv.key) {
                for key in keys {
                    matched.entry(*key).or_default().push(event);
                }
            }
            for key in &self.synced_ranges {
                matched.entry(*key).or_default().push(event);
            }
        }
        self.hub_revision = batch.last_revision;
        for (key, events) in matched {
            let Some(watcher) = self.watchers.get(&key) else {
                continue;
            };
            let selected: Vec<mvccpb::Event> = events
                .into_iter()
                .filter(|e| {
                    e.kv.mod_revision >= watcher.next_revision && watcher.selection.wants(e)
                })
                .map(|e| to_pb_event(e, watcher.selection.prev_kv))
                .collect();
            self.deliver(key, selected, batch.first_revision, batch.last_revision);
        }
        // Synced watchers with nothing in this batch move past it too, so a
        // later fall-back to history starts here. Unsynced ones (including
        // any that just overflowed) keep the revision they still need.
        let next = self.hub_revision + 1;
        for (key, watcher) in self.watchers.iter_mut() {
            if !self.unsynced.contains(key) {
                watcher.next_revision = watcher.next_revision.max(next);
            }
        }
    }

    /// Sends `events` (possibly none) covering revisions up to `through` to
    /// one watcher; a full stream makes it unsynced from `from`.
    fn deliver(&mut self, key: WatcherKey, events: Vec<mvccpb::Event>, from: i64, through: i64) {
        let header = self.header(through);
        let Some(watcher) = self.watchers.get_mut(&key) else {
            return;
        };
        if events.is_empty() {
            watcher.next_revision = watcher.next_revision.max(through + 1);
            return;
        }
        let response = WatchResponse {
            header,
            watch_id: key.1,
            events,
            ..Default::default()
        };
        match try_send(&watcher.sink, response) {
            SendOutcome::Sent => {
                watcher.next_revision = through + 1;
                watcher.sent_since_progress = true;
            }
            SendOutcome::Full => {
                watcher.next_revision = watcher.next_revision.max(from);
                self.mark_unsynced(key);
            }
            SendOutcome::Closed => self.remove(key),
        }
    }

    /// Advances up to SYNC_WATCHERS_MAX unsynced watchers from history;
    /// watchers whose stream buffer is full wait (no history read for them).
    fn sync_unsynced(&mut self) {
        if self.unsynced.is_empty() {
            return;
        }
        let view = self.shared.published().view.clone();
        let compacted = view.compacted_revision();
        let target = self.hub_revision.min(view.revision());
        let keys: Vec<WatcherKey> = self
            .unsynced
            .iter()
            .take(SYNC_WATCHERS_MAX)
            .copied()
            .collect();
        for key in keys {
            let Some(watcher) = self.watchers.get(&key) else {
                self.unsynced.remove(&key);
                continue;
            };
            if watcher.sink.capacity() == 0 {
                continue;
            }
            if watcher.next_revision < compacted {
                self.cancel_compacted(key, compacted);
                continue;
            }
            if watcher.next_revision > target {
                self.mark_synced(key);
                continue;
            }
            let history = view.events(
                &watcher.selection.range,
                watcher.next_revision,
                target + 1,
                CATCH_UP_EVENTS_MAX + 1,
                watcher.selection.prev_kv,
            );
            let events = match history {
                Ok(events) => events,
                Err(_) => {
                    self.cancel_compacted(key, view.compacted_revision());
                    continue;
                }
            };
            let (events, through) =
                cut_at_revision_boundary(events, target, watcher.next_revision, &view, watcher);
            let selected: Vec<mvccpb::Event> = events
                .iter()
                .filter(|e| watcher.selection.wants(e))
                .map(|e| to_pb_event(e, watcher.selection.prev_kv))
                .collect();
            let from = watcher.next_revision;
            self.deliver(key, selected, from, through);
            if self
                .watchers
                .get(&key)
                .is_some_and(|w| w.next_revision > target)
                && self.unsynced.contains(&key)
            {
                self.mark_synced(key);
            }
        }
    }

    /// etcd: a watcher that needs compacted history is cancelled with the
    /// compacted revision.
    fn cancel_compacted(&mut self, key: WatcherKey, compacted: i64) {
        let Some(watcher) = self.watchers.get(&key) else {
            return;
        };
        let response = WatchResponse {
            header: self.header(self.hub_revision),
            watch_id: key.1,
            compact_revision: compacted,
            canceled: true,
            ..Default::default()
        };
        match try_send(&watcher.sink, response) {
            SendOutcome::Full => {} // retried next round
            SendOutcome::Sent | SendOutcome::Closed => self.remove(key),
        }
    }

    /// etcd's progress notification: an empty response at the current
    /// revision to synced watchers that asked for it and got no events since
    /// the last tick.
    fn notify_progress(&mut self) {
        let header = self.header(self.hub_revision);
        let keys: Vec<WatcherKey> = self.watchers.keys().copied().collect();
        for key in keys {
            if self.unsynced.contains(&key) {
                continue;
            }
            let Some(watcher) = self.watchers.get_mut(&key) else {
                continue;
            };
            if !watcher.progress_notify {
                continue;
            }
            if std::mem::take(&mut watcher.sent_since_progress) {
                continue;
            }
            let response = WatchResponse {
                header,
                watch_id: key.1,
                ..Default::default()
            };
            if let SendOutcome::Closed = try_send(&watcher.sink, response) {
                self.remove(key);
            }
        }
    }
}

/// The hub's receiving ends.
pub(crate) struct HubInbox {
    batches: mpsc::Receiver<EventBatch>,
    commands: mpsc::UnboundedReceiver<Command>,
}

fn try_send(sink: &mpsc::Sender<WatchResponse>, response: WatchResponse) -> SendOutcome {
    match sink.try_send(response) {
        Ok(()) => SendOutcome::Sent,
        Err(mpsc::error::TrySendError::Full(_)) => SendOutcome::Full,
        Err(mpsc::error::TrySendError::Closed(_)) => SendOutcome::Closed,
    }
}

/// History reads are capped at CATCH_UP_EVENTS_MAX events; a response must
/// end on a revision boundary so `next_revision` can advance past whole
/// revisions. Returns the events to send and the last revision they cover.
fn cut_at_revision_boundary(
    mut events: Vec<Event>,
    target: i64,
    next_revision: i64,
    view: &keel_btree::ReadView,
    watcher: &Watcher,
) -> (Vec<Event>, i64) {
    if events.len() <= CATCH_UP_EVENTS_MAX {
        return (events, target);
    }
    let last_revision = events[CATCH_UP_EVENTS_MAX - 1].kv.mod_revision;
    events.truncate(CATCH_UP_EVENTS_MAX);
    let first_revision = events.first().map_or(next_revision, |e| e.kv.mod_revision);
    if first_revision == last_revision {
        // One revision holds more than the cap (a large delete range): send
        // that revision whole.
        let whole = view
            .events(
                &watcher.selection.range,
                last_revision,
                last_revision + 1,
                0,
                watcher.selection.prev_kv,
            )
            .unwrap_or(events);
        return (whole, last_revision);
    }
    events.retain(|e| e.kv.mod_revision < last_revision);
    (events, last_revision - 1)
}

/// keel-btree's event -> etcd's wire event; prev_kv only if asked for, and
/// never for a create (version 1), as etcd.
fn to_pb_event(event: &Event, with_prev_kv: bool) -> mvccpb::Event {
    let kind = match event.kind {
        EventKind::Put => mvccpb::event::EventType::Put,
        EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    let is_create = event.kind == EventKind::Put && event.kv.version == 1;
    let prev_kv = if with_prev_kv && !is_create {
        event.prev_kv.clone().map(crate::mvcc::to_pb)
    } else {
        None
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(crate::mvcc::to_pb(event.kv.clone())),
        prev_kv,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Published;
    use keel_btree::{KeyRange, MvccStore};

    /// Puts `key = value` into `store`, publishes the new view and hands the
    /// batch to the hub, as the core does.
    fn put(store: &mut MvccStore, shared: &Shared, hub: &WatchHubHandle, value: &'static str) {
        let before = store.revision();
        let mut txn = store.write_txn();
        txn.put(
            Bytes::from_static(b"k"),
            Bytes::from_static(value.as_bytes()),
            0,
        );
        let committed = txn.commit();
        shared.publish(Published {
            view: store.read_view(),
            applied_index: 0,
        });
        hub.publish(EventBatch {
            first_revision: before + 1,
            last_revision: committed.revision,
            events: committed.events,
        });
    }

    // Guards the quick retry of watchers whose stream buffer was full (etcd's
    // victims): once the buffer has room, the event that did not fit arrives
    // from history within SYNC_INTERVAL (10 ms; with a 100 ms interval the
    // watch-latency p99 of 1000 watchers was 75-170 ms).
    // The clock is paused, so the times below are exact.
    #[tokio::test(start_paused = true)]
    async fn a_watcher_whose_buffer_was_full_gets_the_rest_within_the_sync_interval() {
        let mut store = MvccStore::new();
        let shared = Shared::new(
            1,
            1,
            Published {
                view: store.read_view(),
                applied_index: 0,
            },
        );
        let (hub, handle, inbox) = WatchHub::new(shared.clone(), Duration::from_secs(600));
        tokio::spawn(hub.run(inbox));
        // Room for one response: the second put finds the buffer full.
        let (sink, mut responses) = mpsc::channel(1);
        handle.register(Registration {
            stream_id: 1,
            watch_id: 7,
            selection: Selection {
                range: KeyRange::Key(Bytes::from_static(b"k")),
                no_put: false,
                no_delete: false,
                prev_kv: false,
            },
            start_revision: store.revision() + 1,
            progress_notify: false,
            sink,
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        put(&mut store, &shared, &handle, "a");
        put(&mut store, &shared, &handle, "b");
        tokio::time::sleep(Duration::from_millis(1)).await;
        let values = |r: &WatchResponse| -> Vec<(Bytes, i64)> {
            r.events
                .iter()
                .filter_map(|e| e.kv.as_ref())
                .map(|kv| (kv.value.clone(), kv.mod_revision))
                .collect()
        };
        let first = responses.recv().await.expect("first response");
        assert_eq!(values(&first), vec![(Bytes::from_static(b"a"), 2)]);
        let started = tokio::time::Instant::now();
        let second = responses.recv().await.expect("the event that did not fit");
        assert_eq!(values(&second), vec![(Bytes::from_static(b"b"), 3)]);
        let waited = started.elapsed();
        assert!(
            waited <= SYNC_INTERVAL,
            "the missed event came {waited:?} after the buffer had room"
        );
    }
}
