//! A checkpoint's data.pkl: allatom's limits first, then candle's reader on what passes —
//! exactly what `allatom convert` does.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if allatom::torch::check(data).is_ok() {
        let mut stack = candle_core::pickle::Stack::empty();
        if stack.read_loop(&mut std::io::Cursor::new(data)).is_ok() {
            let _ = stack.finalize();
        }
    }
});
