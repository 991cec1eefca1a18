//! Opens a valid page file damaged by the input: each 5-byte chunk is (offset u32 LE, xor
//! byte); a trailing 1-4 bytes truncate the file to that many pages. Must not panic.
#![no_main]

mod common;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static VALID: OnceLock<Vec<u8>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let mut bytes = VALID.get_or_init(common::valid_file).clone();
    let mut chunks = data.chunks_exact(5);
    for chunk in &mut chunks {
        let offset = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as usize;
        if !bytes.is_empty() {
            let at = offset % bytes.len();
            bytes[at] ^= chunk[4];
        }
    }
    if let Some(&pages) = chunks.remainder().first() {
        bytes.truncate(usize::from(pages) * common::PAGE_SIZE_BYTES);
    }
    common::open_and_read_all(bytes);
});
