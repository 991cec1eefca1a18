//! Opens the input itself as a page file. Must not panic.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::open_and_read_all(data.to_vec());
});
