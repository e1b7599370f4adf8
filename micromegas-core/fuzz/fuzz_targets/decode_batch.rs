//! Any input to the batch and block decoders must give a result or an error: no panic, no
//! hang, no allocation beyond the documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromegas_core::read::interpret;
use micromegas_core::transit::batch::Batch;

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = Batch::decode(data) else { return };
    let _ = batch.encode();
    for block in &batch.blocks {
        let Some(stream) = batch.stream_of(block) else { continue };
        let Ok(payload) = block.decode_payload() else { continue };
        for event in payload.events(stream) {
            let Ok(event) = event else { break };
            let _ = interpret(&batch.process, stream, &event);
            for item in event.tail() {
                if item.is_err() {
                    break;
                }
            }
        }
    }
});
