//! The checker never panics and never hangs: mutated specs that still parse are checked (and
//! their diagnostics rendered), and hostile specs (recursion, exponential inlining, huge dims,
//! huge loops) get diagnostics quickly.

mod common;

use std::time::{Duration, Instant};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Replacements that keep a spec parseable but change its meaning.
const WORDS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "64",
    "1000000000000",
    "-1",
    "0.5",
    "B",
    "C",
    "H",
    "W",
    "Z",
    "x",
    "h",
    "G",
    "D",
    "n",
    "relu",
    "flatten",
    "linear",
    "conv2d",
    "batch_norm",
    "mean",
    "sum",
    "reshape",
    "concat",
    "stop_grad",
    "true",
    "\"A\"",
    "\"B\"",
    "[B]",
    "[B, C, H, W]",
    "[1, 2]",
];

/// Swaps one word-like token of `source` for another.
fn mutate(rng: &mut Rng, source: &str) -> String {
    let mut out = source.to_string();
    for _ in 0..=rng.below(3) {
        let spans: Vec<(usize, usize)> = token_spans(&out);
        if spans.is_empty() {
            break;
        }
        let (a, b) = spans[rng.below(spans.len())];
        out.replace_range(a..b, WORDS[rng.below(WORDS.len())]);
    }
    out
}

fn token_spans(s: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    let mut in_comment = false;
    for (i, c) in s.char_indices() {
        if in_comment {
            in_comment = c != '\n';
            continue;
        }
        if c == '/' && s[i..].starts_with("//") {
            in_comment = true;
            continue;
        }
        let word = c.is_ascii_alphanumeric() || c == '_';
        match (word, start) {
            (true, None) => start = Some(i),
            (false, Some(a)) => {
                spans.push((a, i));
                start = None;
            }
            _ => {}
        }
    }
    spans
}

#[test]
fn mutated_specs_are_checked_without_panicking() {
    let seeds: Vec<String> = common::gen_files("specs").iter().map(|p| common::read(p)).collect();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let started = Instant::now();
    let (mut checked, mut failing) = (0, 0);
    for _ in 0..600 {
        let seed = rng.below(seeds.len());
        let input = mutate(&mut rng, &seeds[seed]);
        let (ast, errors) = genc_grammar::parse(&input);
        if !errors.is_empty() {
            continue;
        }
        let result = genc_compiler::check::check(&ast, &[]);
        for e in &result.errors {
            let _ = genc::report::render_human(e, "fuzz.gen", Some(&input), false);
            assert!(e.span.end <= input.len(), "a label points past the end: {e:?}");
        }
        checked += 1;
        failing += usize::from(!result.errors.is_empty());
    }
    eprintln!("{checked} parsed mutants checked, {failing} with diagnostics, in {:.1?}", started.elapsed());
    assert!(checked > 300 && failing > 50);
}

#[test]
fn hostile_specs_get_diagnostics_quickly() {
    let chain: String = (0..40)
        .map(|i| format!("block b{i}(x: [B, 4]) -> [B, 4] {{\n    return b{}(b{}(x))\n}}\n", i + 1, i + 1))
        .collect();
    let cases = [
        ("self recursion", "dims B\nblock f(x: [B, 4]) -> [B, 4] {\n    return f(x)\n}\nnet N(x: [B, 4]) -> [B, 4] = f(x)\n".to_string(), "E0108"),
        (
            "mutual recursion",
            "dims B\nblock f(x: [B, 4]) -> [B, 4] = g(x)\nblock g(x: [B, 4]) -> [B, 4] = f(x)\nnet N(x: [B, 4]) -> [B, 4] = f(x)\n".to_string(),
            "E0108",
        ),
        (
            "exponential inlining",
            format!("dims B\n{chain}block b40(x: [B, 4]) -> [B, 4] = relu(x)\nnet N(x: [B, 4]) -> [B, 4] = b0(x)\n"),
            "E0113",
        ),
        ("huge dim product", "dims B, H = 4_000_000_000, W = 4_000_000_000, HW = H * W * H\n".to_string(), "E0103"),
        ("division by zero", "dims B, H = 28, Z = H / 0\n".to_string(), "E0103"),
        ("not a whole number", "dims B, H = 28, H3 = H / 3\n".to_string(), "E0103"),
        (
            "huge loop",
            "dims B\nnet N(x: [B, 4]) -> [B, 4] {\n    let h = x\n    for i in 0..1_000_000_000 {\n        h = relu(h)\n    }\n    return h\n}\n".to_string(),
            "E0113",
        ),
    ];
    for (name, source, code) in cases {
        let started = Instant::now();
        let checked = common::check(name, &source);
        let codes: Vec<&str> = checked.errors.iter().map(|e| e.code).collect();
        assert!(codes.contains(&code), "{name}: expected {code}, found {codes:?}");
        // A guard against hangs, not a speed test (the fuel limit is the real bound; a loaded
        // 2-core machine takes several seconds for the worst case in a debug build).
        assert!(started.elapsed() < Duration::from_secs(60), "{name} took {:?}", started.elapsed());
    }
}
