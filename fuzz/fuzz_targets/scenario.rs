//! Fuzz target `scenario`: arbitrary bytes into `nsconform::check_scenario`, the parser and
//! validator behind `nsconform check`. It must never panic, and every error it returns must
//! name the path it was given.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

const PATH: &str = "fuzz/input.toml";

fn check(text: &str) {
    if let Err(message) = nsconform::check_scenario(Path::new(PATH), text) {
        assert!(
            message.starts_with(PATH),
            "the error does not name the file:\n{message}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    match std::str::from_utf8(data) {
        Ok(text) => check(text),
        // Not UTF-8: the CLI would refuse to read it, but the replacement characters that a
        // lossy decoding inserts are fair input too.
        Err(_) => check(&String::from_utf8_lossy(data)),
    }
});
