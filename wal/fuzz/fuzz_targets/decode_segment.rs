//! Decodes arbitrary bytes as a segment image, as recovery would: must never panic. Inputs
//! that start with a valid header (see the seed made by `decode_segment` below) reach the
//! record decoder; others exercise header verification.
//!
//! `cargo +nightly fuzz run decode_segment` from wal/.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // Also decode the input placed after a valid header, so that most inputs exercise the
    // record decoder rather than stopping at the magic check.
    let _verdict = keel_wal::segment_verify(bytes);
    let mut image = keel_wal::segment_header_block(0, 1);
    image.extend_from_slice(bytes);
    let _verdict = keel_wal::segment_verify(&image);
});
