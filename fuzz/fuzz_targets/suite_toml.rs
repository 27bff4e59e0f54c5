//! Suite files (`tokbench run SUITE`): `Suite::from_toml`, then the matrix the runner expands.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tokbench_core::Suite;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(suite) = Suite::from_toml(text, Path::new("/suites/fuzz.toml")) else {
        return;
    };
    for cell in suite.cells() {
        let _ = cell.model.display_name();
        let _ = cell.test.label();
        let _ = cell.engine.resolve(8);
    }
    for &b in &suite.backends {
        let _ = suite.settings(b);
        let _ = suite.serves_own_model(b);
    }
});
