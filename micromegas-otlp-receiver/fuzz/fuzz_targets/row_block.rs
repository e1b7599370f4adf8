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
use micromegas_lake::row_blocks::{decode_row_block, sealing};
use micromegas_lake::LakeError;

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
        1 => sealing::seal_mmr1(rest.to_vec()),
        2 => sealing::seal(rest.to_vec()),
        _ => sealing::chunked(rest).expect("inputs are far under 4 GiB"),
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
