#![no_main]

// Parse, render, parse the rendering again (it must give the same expression), and list fields.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else { return };
    if let Ok(logic) = redcap_logic::parse(src) {
        let _ = logic.fields();
        let _ = logic.eval(&redcap_logic::MapContext::new());
        let shown = logic.to_string();
        if let Ok(again) = redcap_logic::parse(&shown) {
            assert_eq!(again, logic, "the rendering {shown:?} parses to another expression");
        }
    }
});
