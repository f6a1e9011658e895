//! The parser never panics or hangs, and the formatter keeps its properties, on tens of
//! thousands of inputs: every spec and corpus file mutated at random (bytes and tokens
//! deleted, inserted, duplicated, swapped), random token soup, and the pathological inputs
//! (deep nesting, long operator chains, huge files, binary junk).
//!
//! The generator is a fixed-seed xorshift, so a failure reproduces exactly.

mod common;

use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const TOKENS: [&str; 48] = [
    "(", ")", "[", "]", "{", "}", ",", ":", "=", "==", "~", "|>", "->", "..", "..=", "...", "^", "-", "!",
    "@", "let", "return", "for", "in", "if", "else", "fixed", "net", "block", "loss", "sampler", "train",
    "dims", "where", "param", "step", "repeat", "minimize", "with", "every", "steps", "\"", "//", "\n", "1e",
    "2.5", "x", "é",
];

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    for _ in 0..=rng.below(4) {
        let len = text.len();
        let at = rng.below(len + 1);
        match rng.below(6) {
            0 => {
                let end = (at + 1 + rng.below(12)).min(len);
                text.drain(at.min(len)..end);
            }
            1 => text.splice(at..at, TOKENS[rng.below(TOKENS.len())].chars()).for_each(drop),
            2 => {
                let end = (at + rng.below(40)).min(len);
                let copy: Vec<char> = text[at..end].to_vec();
                let to = rng.below(len + 1);
                text.splice(to..to, copy).for_each(drop);
            }
            3 => text.truncate(at),
            4 => {
                if at < len {
                    text[at] = char::from_u32(rng.below(0x3000) as u32).unwrap_or('?');
                }
            }
            _ => {
                let b = rng.below(len + 1);
                let (lo, hi) = (at.min(b), at.max(b));
                if hi > lo && hi < len {
                    text.swap(lo, hi);
                }
            }
        }
    }
    text.into_iter().collect()
}

fn token_soup(rng: &mut Rng) -> String {
    (0..rng.below(80)).map(|_| TOKENS[rng.below(TOKENS.len())]).collect::<Vec<_>>().join(" ")
}

/// Parses, and when the input parses, checks the formatter's properties on it too.
fn exercise(input: &str) -> bool {
    let (_, errors) = genc_grammar::parse(input);
    for error in &errors {
        let _ = genc::report::render_human(error, "fuzz.gen", Some(input), false);
    }
    if errors.is_empty() {
        common::assert_format_properties("fuzz", input);
    }
    errors.is_empty()
}

#[test]
fn ten_thousand_mutated_and_random_inputs_never_panic() {
    let mut seeds: Vec<String> = Vec::new();
    for dir in ["specs", "tests/diagnostics/syntax", "tests/format"] {
        seeds.extend(common::gen_files(dir).iter().map(|p| common::read(p)));
    }
    assert!(!seeds.is_empty());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let started = Instant::now();
    let (mut total, mut parsed) = (0, 0);
    while total < 10_000 {
        let input = if total % 10 == 9 {
            token_soup(&mut rng)
        } else {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, seed)
        };
        parsed += usize::from(exercise(&input));
        total += 1;
    }
    eprintln!("{total} inputs, {parsed} parsed, in {:.1?}", started.elapsed());
    assert!(parsed > 100, "the mutations should leave some inputs valid, to test the formatter on");
}

#[test]
fn pathological_inputs_get_diagnostics_quickly() {
    let deep_parens = format!("param p = {}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let deep_lists = format!("param p = {}", "[".repeat(50_000));
    let power_chain = format!("param p = {}1", "1 ^ ".repeat(100_000));
    let prefix_run = format!("param p = {}1", "-".repeat(100_000));
    let long_sum = format!("param p = {}1", "1 + ".repeat(100_000));
    let long_calls = format!("param p = f{}", "()".repeat(100_000));
    let junk: String = (0..200_000u32).map(|i| char::from_u32(i % 0xD000).unwrap_or('x')).collect();
    let many_items = "param p = 1\n".repeat(20_000);
    let cases = [
        ("deep parentheses", deep_parens, false),
        ("deep lists", deep_lists, false),
        ("power chain", power_chain, false),
        ("prefix run", prefix_run, false),
        ("long sum", long_sum, false),
        ("long call chain", long_calls, false),
        ("binary junk", junk, false),
        ("many items", many_items, true),
        ("empty", String::new(), false),
    ];
    for (name, input, valid) in cases {
        let started = Instant::now();
        let (_, errors) = genc_grammar::parse(&input);
        assert_eq!(errors.is_empty(), valid, "{name}: {:?}", errors.first());
        assert!(started.elapsed() < Duration::from_secs(20), "{name} took {:?}", started.elapsed());
    }
}
