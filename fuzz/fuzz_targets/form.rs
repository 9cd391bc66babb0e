#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| redcap_emulator::fuzzing::form(data));
