//! Memory per key of an MVCC store with 1M keys (16-byte keys, 256-byte values; each put once,
//! or twice with and without compaction),
//! measured with a counting global allocator: live heap bytes after building, minus before.
//! Prints one line per shape; run with `cargo bench -p keel-btree --bench memory`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes (requested sizes; allocator overhead is not included).
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so System's
// guarantees hold; the counters are side bookkeeping that never touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        LIVE_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_ALLOCATIONS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged; `ptr` came from `alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const KEY_COUNT: u64 = 1_000_000;

/// Builds the store (`rounds` puts per key, then compacted to the current revision when
/// `compact`) and prints the live heap it holds per key.
fn measure(label: &str, batch_puts: usize, rounds: usize, compact: bool) {
    let bytes_before = LIVE_BYTES.load(Ordering::Relaxed);
    let allocations_before = LIVE_ALLOCATIONS.load(Ordering::Relaxed);
    let mut store = common::store_with_rounds(KEY_COUNT, batch_puts, rounds);
    if compact {
        store
            .compact(store.revision())
            .expect("compact to the current revision");
    }
    // A published read view, as the server always holds one.
    let view = store.read_view();
    let bytes = LIVE_BYTES.load(Ordering::Relaxed) - bytes_before;
    let allocations = LIVE_ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    let key_count = usize::try_from(KEY_COUNT).expect("fits");
    let payload = common::KEY_SIZE_BYTES + common::VALUE_SIZE_BYTES;
    println!(
        "{label}: {key_count} keys, {} MiB live heap, {} bytes/key \
         ({payload} payload + {} overhead), {:.1} allocations/key",
        bytes >> 20,
        bytes / key_count,
        bytes / key_count - payload,
        allocations as f64 / key_count as f64,
    );
    store.check().expect("store invariants hold");
    drop(view);
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--test`-like args; stay quick there.
    if std::env::args().any(|arg| arg == "--test" || arg == "--list") {
        return;
    }
    measure("1M keys, 1 put per txn", 1, 1, false);
    measure("1M keys, 100 puts per txn", 100, 1, false);
    measure("1M keys, 2 puts each, not compacted", 100, 2, false);
    measure("1M keys, 2 puts each, compacted", 100, 2, true);
}
