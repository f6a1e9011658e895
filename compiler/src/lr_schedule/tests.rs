//! Each schedule's factor against numbers printed by PyTorch 2.15's `torch.optim.lr_scheduler`
//! (SGD with lr 1.0, reading `param_groups[0]["lr"]` before each `step()`): the constructor
//! that produced them is written above each table.

use super::*;

fn options(pairs: &[(&str, OptionValue)]) -> Options {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn parse(kind: &str, o: Options) -> LrSchedule {
    LrSchedule::from_options(kind, &o).unwrap_or_else(|p| panic!("{kind}: {p:?}"))
}

fn n(x: f64) -> OptionValue {
    OptionValue::Number(x)
}

fn assert_factors(s: &LrSchedule, run: u64, expected: &[(u64, f64)]) {
    for &(t, want) in expected {
        let got = s.factor(t, run);
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{s:?} at update {t}: {got}, PyTorch {want}"
        );
    }
}

#[test]
fn exponential_is_pytorchs_exponential_lr() {
    // ExponentialLR(gamma=1/1.00004): cGAN's decay factor 1.00004, dividing.
    let s = parse("exponential", options(&[("gamma", n(1.0 / 1.00004))]));
    assert_factors(
        &s,
        60_000,
        &[
            (0, 1.0),
            (1, 0.9999600015999359),
            (10, 0.999600087985921),
            (1000, 0.9607902077636078),
            (59_999, 0.09072593663142658),
            (60_000, 0.090722307739117),
        ],
    );
}

#[test]
fn exponential_stops_at_min_lr_and_never_lifts_the_base() {
    let s = LrSchedule::Exponential { gamma: 0.5, min_lr: 1e-3 };
    assert_eq!(s.lr(0.1, 0, 100), 0.1);
    assert_eq!(s.lr(0.1, 1, 100), 0.05);
    assert_eq!(s.lr(0.1, 20, 100), 1e-3);
    assert_eq!(s.lr(1e-4, 5, 100), 1e-4, "a floor above the base rate holds the base, never more");
}

#[test]
fn step_is_pytorchs_step_lr() {
    // StepLR(step_size=30, gamma=0.5)
    let s = parse("step", options(&[("0", n(30.0)), ("gamma", n(0.5))]));
    assert_factors(&s, 100, &[(0, 1.0), (29, 1.0), (30, 0.5), (59, 0.5), (60, 0.25), (99, 0.125)]);
}

#[test]
fn cosine_is_pytorchs_cosine_annealing_lr() {
    // CosineAnnealingLR(T_max=100, eta_min=0.1)
    let s = parse("cosine", options(&[("steps", n(100.0)), ("min", n(0.1))]));
    assert_factors(
        &s,
        1_000,
        &[
            (0, 1.0),
            (1, 0.9997779521645792),
            (25, 0.8681980515339464),
            (50, 0.5500000000000002),
            (99, 0.10022204783542078),
            (100, 0.1),
            (500, 0.1),
        ],
    );
}

#[test]
fn cosine_without_a_length_spans_the_run() {
    // The same numbers as above, with the length taken from a 100-update run.
    let s = parse("cosine", options(&[("min", n(0.1))]));
    assert_factors(&s, 100, &[(0, 1.0), (25, 0.8681980515339464), (50, 0.5500000000000002), (100, 0.1)]);
}

#[test]
fn cosine_with_warmup_is_linear_warmup_then_cosine() {
    // SequentialLR([LinearLR(start_factor=0.1, total_iters=9), CosineAnnealingLR(T_max=90)],
    //              milestones=[10])
    let s = parse("cosine", options(&[("warmup", n(10.0))]));
    assert_factors(
        &s,
        100,
        &[
            (0, 0.1),
            (5, 0.6),
            (9, 1.0),
            (10, 1.0),
            (55, 0.49999999999999994),
            (99, 0.0003045864904521187),
            (100, 0.0),
        ],
    );
}

#[test]
fn linear_is_pytorchs_linear_lr_to_zero() {
    // LinearLR(start_factor=1.0, end_factor=0.0, total_iters=100)
    let s = parse("linear", options(&[("0", n(100.0))]));
    assert_factors(&s, 5, &[(0, 1.0), (1, 0.99), (50, 0.5), (99, 0.01), (100, 0.0), (150, 0.0)]);
}

#[test]
fn constant_warmup_is_pytorchs_linear_lr_warmup() {
    // LinearLR(start_factor=1/5, total_iters=4)
    let s = parse("constant", options(&[("warmup", n(5.0))]));
    assert_factors(&s, 100, &[(0, 0.2), (1, 0.4), (2, 0.6000000000000001), (3, 0.8), (4, 1.0), (5, 1.0)]);
}

#[test]
fn piecewise_takes_a_value_per_interval() {
    let o = options(&[
        ("boundaries", OptionValue::List(vec![10.0, 20.0])),
        ("values", OptionValue::List(vec![1.0, 0.1, 0.01])),
    ]);
    let s = parse("piecewise", o);
    assert_factors(&s, 100, &[(0, 1.0), (9, 1.0), (10, 0.1), (19, 0.1), (20, 0.01), (99, 0.01)]);
}

#[test]
fn a_rising_schedule_is_reported_with_its_final_factor() {
    let up = LrSchedule::Exponential { gamma: 1.00004, min_lr: 0.0 };
    let rise = up.rises(60_000).unwrap_or_else(|| panic!("exponential with gamma above 1 rises"));
    assert!((rise - 1.00004f64.powi(59_999)).abs() < 1e-9, "{rise}");
    assert_eq!(LrSchedule::Exponential { gamma: 0.9, min_lr: 0.0 }.rises(100), None);
    assert_eq!(LrSchedule::Constant { warmup: 50 }.rises(100), None);
}

#[test]
fn bad_options_name_the_option_and_say_how_to_fix_it() {
    let problem = |kind: &str, o: Options| match LrSchedule::from_options(kind, &o) {
        Ok(s) => panic!("{kind} made {s:?}"),
        Err(p) => p,
    };
    let p = problem("exponential", options(&[("factor", n(1.00004))]));
    assert_eq!(p.option.as_deref(), Some("factor"));
    assert!(p.help.as_deref().unwrap_or("").contains("gamma: 1 / f"), "{p:?}");
    let p = problem("cosine", options(&[("warmpu", n(5.0))]));
    assert_eq!(p.help.as_deref(), Some("did you mean `warmup`?"));
    let p = problem("cosine", options(&[("warmup", n(2.5))]));
    assert_eq!(p.message, "`warmup` must be a whole number of updates");
    let p = problem("exponential", options(&[]));
    assert!(p.message.starts_with("`exponential` needs `gamma`"), "{p:?}");
    let p = problem(
        "piecewise",
        options(&[("boundaries", OptionValue::List(vec![5.0])), ("values", OptionValue::List(vec![1.0]))]),
    );
    assert_eq!(p.message, "1 boundaries need 2 values, found 1");
    let p = problem("cosin", options(&[]));
    assert_eq!(p.help.as_deref(), Some("did you mean `cosine`?"));
    let p = problem("constant", options(&[("0", n(3.0))]));
    assert_eq!(p.message, "`constant` takes no positional argument");
}

#[test]
fn the_docs_list_every_schedule_from_this_table() {
    let docs = include_str!("../../../docs/language.md");
    let table = docs_table();
    assert!(docs.contains(&table), "docs/language.md's schedule table is out of date; write:\n{table}");
}
