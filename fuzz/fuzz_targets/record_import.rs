#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = redcap_emulator::fuzzing::record_import(data);
});
