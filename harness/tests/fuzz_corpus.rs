//! The fuzz target's corpus, run as an ordinary test: `nsconform::check_scenario` must never
//! panic, and every error it returns must name the path it was given.
//!
//! Inputs: every scenario file of the repository (`scenarios/**/*.toml`, `fixtures/**/*.toml`,
//! the seed corpus of `fuzz/seed.sh`) and deterministic mutations of each — truncations at
//! every tenth of the length, byte flips, duplicated and deleted lines, insertions of the
//! words of `fuzz/scenario.dict` — plus every reproducer kept in `fuzz/regressions/` and
//! every file the fuzzer left in `fuzz/artifacts/scenario/` (crashes, timeouts, leaks).
//! The mutations are chosen by a xorshift generator seeded from each file's name, so every
//! run checks the same inputs.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Files under `dir` (recursively) whose name ends with `suffix`, sorted.
fn files_under(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, suffix, out);
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
}

/// A small deterministic generator (xorshift64*), seeded from a name.
struct Rng(u64);

impl Rng {
    fn seeded(name: &str) -> Self {
        // FNV-1a, then never zero.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in name.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Rng(hash | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Words to insert when `fuzz/scenario.dict` is missing.
const FALLBACK_WORDS: &[&str] = &[
    "[[steps]]\n",
    "[actors.a]\n",
    "[requires]\n",
    "unshare = [\"uts\"]",
    "join = \"a\"",
    "parent = \"a\"",
    "observe = [\"identity\"]",
    "expect.",
    "{{pid.",
    "{{var.",
    "}}",
    "map = \"root\"",
    "timeout = ",
    "\"",
    "=",
    "[",
    "]",
    "{",
    "}",
    "\n",
];

/// The words of the fuzzer's dictionary (`"word"` lines with `\"`, `\\` and `\xNN` escapes).
fn dictionary() -> Vec<Vec<u8>> {
    let path = repo().join("fuzz/scenario.dict");
    let Ok(text) = std::fs::read_to_string(&path) else {
        // Without the fuzz project (a partial checkout), a few words of the format.
        return FALLBACK_WORDS
            .iter()
            .map(|w| w.as_bytes().to_vec())
            .collect();
    };
    let mut words = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(quoted) = line
            .find('"')
            .and_then(|start| line[start..].strip_prefix('"'))
            .and_then(|rest| rest.strip_suffix('"'))
        else {
            continue;
        };
        let bytes = quoted.as_bytes();
        let mut word = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'\\' && i + 1 < bytes.len() {
                if bytes[i + 1] == b'x' && i + 3 < bytes.len() {
                    if let Ok(value) = u8::from_str_radix(&quoted[i + 2..i + 4], 16) {
                        word.push(value);
                        i += 4;
                        continue;
                    }
                }
                word.push(bytes[i + 1]);
                i += 2;
            } else {
                word.push(bytes[i]);
                i += 1;
            }
        }
        words.push(word);
    }
    assert!(
        words.len() >= 50,
        "only {} words in {}",
        words.len(),
        path.display()
    );
    words
}

/// Deterministic mutations of `bytes`, each with a short label.
fn mutations(name: &str, bytes: &[u8], words: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng::seeded(name);
    let mut out = Vec::new();
    let len = bytes.len();

    // Truncations at every tenth of the length (0% is the empty file).
    for tenth in 0..10 {
        let at = len * tenth / 10;
        out.push((format!("truncated-{}0%", tenth), bytes[..at].to_vec()));
    }
    if len == 0 {
        return out;
    }
    // Byte flips: one bit, a whole byte, an ASCII punctuation character, a non-UTF-8 byte.
    let punctuation = b"\"'[]{}=.,#\n\\";
    for round in 0..8 {
        let at = rng.below(len);
        let mut flipped = bytes.to_vec();
        flipped[at] = match round % 4 {
            0 => flipped[at] ^ (1 << rng.below(8)),
            1 => !flipped[at],
            2 => punctuation[rng.below(punctuation.len())],
            _ => 0x80 | (rng.next() as u8),
        };
        out.push((format!("flip-{at}"), flipped));
    }
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    // Duplicated and deleted lines.
    for _ in 0..6 {
        let at = rng.below(lines.len());
        let mut duplicated = lines.clone();
        duplicated.insert(at, lines[at]);
        out.push((format!("duplicated-line-{}", at + 1), duplicated.concat()));
        let mut deleted = lines.clone();
        deleted.remove(at);
        out.push((format!("deleted-line-{}", at + 1), deleted.concat()));
    }
    // Swapped lines, to reorder tables and keys.
    for _ in 0..3 {
        let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
        let mut swapped = lines.clone();
        swapped.swap(a, b);
        out.push((
            format!("swapped-lines-{}-{}", a + 1, b + 1),
            swapped.concat(),
        ));
    }
    // Dictionary words inserted at any byte, at line starts, and replacing a span.
    for round in 0..10 {
        let word = &words[rng.below(words.len())];
        let at = if round % 2 == 0 {
            rng.below(len + 1)
        } else {
            let line = rng.below(lines.len());
            lines[..line].iter().map(|l| l.len()).sum()
        };
        let end = if round % 3 == 2 {
            (at + rng.below(16)).min(len)
        } else {
            at
        };
        let mut inserted = bytes[..at].to_vec();
        inserted.extend_from_slice(word);
        inserted.extend_from_slice(&bytes[end..]);
        out.push((format!("word-{round}-at-{at}"), inserted));
    }
    out
}

/// Check one input: `None` when fine, else what went wrong.
fn check(label: &str, bytes: &[u8]) -> Option<String> {
    let path = PathBuf::from(label);
    let text = String::from_utf8_lossy(bytes);
    let result = catch_unwind(AssertUnwindSafe(|| nsconform::check_scenario(&path, &text)));
    match result {
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(not a string)");
            Some(format!("{label}: PANIC: {message}\n  input: {text:?}"))
        }
        Ok(Err(message)) if !message.starts_with(label) => Some(format!(
            "{label}: the error does not name the path:\n  {message}\n  input: {text:?}"
        )),
        Ok(Err(message)) if message.trim().is_empty() => {
            Some(format!("{label}: an empty error\n  input: {text:?}"))
        }
        Ok(_) => None,
    }
}

#[test]
fn corpus_and_its_mutations_never_panic_and_errors_name_the_file() {
    let root = repo();
    let mut seeds = Vec::new();
    files_under(&root.join("scenarios"), ".toml", &mut seeds);
    files_under(&root.join("fixtures"), ".toml", &mut seeds);
    seeds.sort();
    assert!(seeds.len() >= 100, "only {} seed files", seeds.len());
    let words = dictionary();

    let mut problems = Vec::new();
    let mut checked = 0usize;
    for file in &seeds {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(file).expect("read seed");
        let outcome = check(&name, &bytes);
        checked += 1;
        if let Some(problem) = outcome {
            problems.push(problem);
        } else {
            // The seed corpus is what it claims: shipped scenarios are valid, malformed
            // fixtures are not (so the mutations start from both sides of the validator).
            let valid = nsconform::check_scenario(file, &String::from_utf8_lossy(&bytes)).is_ok();
            if name.starts_with("scenarios/") && !valid {
                problems.push(format!("{name}: a shipped scenario does not check"));
            }
            if name.starts_with("fixtures/invalid/") && valid {
                problems.push(format!("{name}: a malformed fixture checks as valid"));
            }
        }
        for (label, mutated) in mutations(&name, &bytes, &words) {
            checked += 1;
            if let Some(problem) = check(&format!("{name}~{label}"), &mutated) {
                problems.push(problem);
            }
        }
    }

    // Reproducers: committed regressions and whatever the fuzzer found locally.
    let mut reproducers = Vec::new();
    files_under(&root.join("fuzz/regressions"), "", &mut reproducers);
    files_under(&root.join("fuzz/artifacts/scenario"), "", &mut reproducers);
    reproducers.retain(|path| path.file_name().is_some_and(|n| n != "README.md"));
    reproducers.sort();
    for file in &reproducers {
        let name = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(file).expect("read reproducer");
        checked += 1;
        if let Some(problem) = check(&name, &bytes) {
            problems.push(problem);
        }
    }

    eprintln!(
        "checked {checked} inputs from {} seed files and {} reproducers",
        seeds.len(),
        reproducers.len()
    );
    assert!(
        problems.is_empty(),
        "{} of {checked} inputs went wrong:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn mutations_are_deterministic_and_varied() {
    let words = dictionary();
    let text = b"description = \"d\"\n[[steps]]\nrun = \"true\"\n";
    let first = mutations("x.toml", text, &words);
    let second = mutations("x.toml", text, &words);
    assert_eq!(first, second);
    let distinct: std::collections::BTreeSet<_> = first.iter().map(|(_, b)| b).collect();
    assert!(distinct.len() > first.len() / 2, "{first:?}");
    assert!(mutations("x.toml", b"", &words)
        .iter()
        .all(|(_, b)| b.is_empty()));
}
