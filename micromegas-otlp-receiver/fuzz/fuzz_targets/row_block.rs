//! Any bytes read as a stored row block must decode or be refused as corrupt, never panic
//! or abort. Random bytes stop at the block's checksum, so the input's first byte also
//! chooses to wrap the rest as a block whose checksum holds:
//! - 0: the bytes as they are;
//! - 1: the rest as an uncompressed Arrow IPC stream (`MMR1`, as written before LZ4 chunks);
//! - 2: the rest as LZ4 chunks of an IPC stream (`MMR2`): the chunk layout is fuzzed;
//! - 3: the rest as an IPC stream cut into valid LZ4 chunks (`MMR2`): the IPC stream behind
//!   a valid chunk layout is fuzzed.
//!
//! Arrow's IPC reader panics on some damaged streams (an offset past its buffer); the lake
//! catches those panics and reports the block as corrupt, so this target lets them unwind
//! (libFuzzer's hook would abort at once) and keeps them quiet. Any other panic still
//! aborts and is a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromegas_lake::row_blocks::decode_row_block;
use micromegas_lake::LakeError;

/// `body` followed by `marker` and the checksum the lake writes for it.
fn checked(mut body: Vec<u8>, marker: &[u8; 4], covers_marker: bool) -> Vec<u8> {
    if covers_marker {
        body.extend_from_slice(marker);
        let check = xxhash_rust::xxh3::xxh3_64(&body);
        body.extend_from_slice(&check.to_le_bytes());
    } else {
        let check = xxhash_rust::xxh3::xxh3_64(&body);
        body.extend_from_slice(marker);
        body.extend_from_slice(&check.to_le_bytes());
    }
    body
}

/// `ipc` in the chunk layout of an `MMR2` body: its length, then each 32 KiB chunk's
/// compressed length and LZ4 block.
fn chunked(ipc: &[u8]) -> Vec<u8> {
    let mut out = (ipc.len() as u32).to_le_bytes().to_vec();
    for chunk in ipc.chunks(32 << 10) {
        let block = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

/// Arrow's panics unwind quietly (the lake catches them); any other panic is reported as
/// usual. A panic that escapes the target still aborts.
fn quiet_arrow_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_arrow = info
            .location()
            .is_some_and(|l| l.file().contains("/arrow-"));
        if !in_arrow {
            report(info);
        }
    }));
}

fuzz_target!(init: quiet_arrow_panics(), |data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let block = match mode % 4 {
        0 => data.to_vec(),
        1 => checked(rest.to_vec(), b"MMR1", false),
        2 => checked(rest.to_vec(), b"MMR2", true),
        _ => checked(chunked(rest), b"MMR2", true),
    };
    match decode_row_block(&block) {
        Ok(batches) => {
            for b in batches {
                // Each batch is whole: every column has the batch's rows.
                assert!(b.columns().iter().all(|c| c.len() == b.num_rows()));
            }
        }
        Err(LakeError::Corrupt { .. }) => {}
        Err(e) => panic!("a damaged row block must be reported as corrupt: {e}"),
    }
});
