//! Proposal ids, unique per member across restarts (etcd's idutil.Generator):
//! the member id's low 16 bits, then a counter that starts at the boot time in
//! milliseconds shifted left by 8. An entry proposed before a restart and
//! applied after it can therefore never be mistaken for a new proposal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const PREFIX_SHIFT_BITS: u32 = 48;
const COUNTER_MASK: u64 = (1 << PREFIX_SHIFT_BITS) - 1;

pub(crate) struct IdGenerator {
    prefix: u64,
    counter: AtomicU64,
}

impl IdGenerator {
    pub(crate) fn new(member_id: u64) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        IdGenerator {
            prefix: (member_id & 0xffff) << PREFIX_SHIFT_BITS,
            counter: AtomicU64::new((now_ms << 8) & COUNTER_MASK),
        }
    }

    /// A new id; never 0 (0 means "nobody waits").
    pub(crate) fn next(&self) -> u64 {
        loop {
            let n = self.counter.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & COUNTER_MASK;
            let id = self.prefix | n;
            if id != 0 {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_carry_the_member_prefix() {
        let ids = IdGenerator::new(0xabcd_1234);
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(a >> PREFIX_SHIFT_BITS, 0x1234);
    }
}
