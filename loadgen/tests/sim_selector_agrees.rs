//! The simulator's label-selector parser and the engine's (`kcache::selector`)
//! are two independent implementations of apimachinery's `labels.Parse`: for
//! random selector strings and label sets they must agree on which selectors
//! parse and on which label sets each one matches.
//!
//! Every disagreement fails this test. It found four corners where the engine
//! departed from apimachinery (`in`/`notin` as keys and values, `()` as the
//! set holding the empty value, Unicode whitespace and NUL bytes, upper-case
//! key prefixes); they are fixed in the engine and pinned below.

use std::collections::BTreeMap;

use kcache::selector::LabelSelector as EngineSelector;
use kcache_loadgen::sim::LabelSelector as SimSelector;
use proptest::prelude::*;

const KEYS: &[&str] = &[
    "app", "tier", "a", "b.c", "x-y_z", "Upper", "example.com/app", "k8s.io/x", "a-b.c/d", "-bad",
    "bad-", "a/b/c", "/a", "a/", "a_/b", "é",
];
const VALUES: &[&str] = &[
    "", "web", "api", "3", "10", "-1", "+2", "007", "a.b", "-x", "x-", "Web_1", "9223372036854775808", "x y",
];
const OPERATORS: &[&str] = &["", "!", "=", "==", "!=", " in ", " notin ", ">", "<", " ", "=>", "!!", "\t==\n"];

fn long_name(n: usize) -> String {
    "a".repeat(n)
}

/// A key, valid or not, including names at and just over the length limit.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => prop::sample::select(vec![63usize, 64]).prop_map(long_name),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(VALUES).prop_map(str::to_owned),
        1 => prop::sample::select(vec![63usize, 64]).prop_map(long_name),
    ]
}

/// One requirement built from pieces: mostly well-formed, sometimes not.
fn requirement() -> impl Strategy<Value = String> {
    (
        key(),
        prop::sample::select(OPERATORS),
        prop::collection::vec(value(), 0..4),
        any::<bool>(),
    )
        .prop_map(|(key, op, values, spaced)| match op {
            "!" => format!("!{key}"),
            " in " | " notin " => {
                let sep = if spaced { ", " } else { "," };
                format!("{key}{op}({})", values.join(sep))
            }
            "" => key,
            _ => format!("{key}{op}{}", values.first().map_or("", String::as_str)),
        })
}

/// A selector: requirements joined by commas (sometimes doubled or trailing),
/// or random text over the selector alphabet.
fn selector() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (prop::collection::vec(requirement(), 0..4), prop::sample::select(vec![",", ", ", ",,", " , "]))
            .prop_map(|(reqs, sep)| reqs.join(sep)),
        1 => (prop::collection::vec(requirement(), 1..3), prop::sample::select(vec![",", ")", " x", "("]))
            .prop_map(|(reqs, tail)| format!("{}{tail}", reqs.join(","))),
        3 => "[a-z0-9=!(),<> ._/-]{0,30}",
        1 => "[a-pA-P0-9=!()<>, .\t\n_/+é-]{0,20}",
    ]
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(&KEYS[..9]).prop_map(str::to_owned),
        prop::sample::select(&VALUES[..13]).prop_map(str::to_owned),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, max_global_rejects: 100_000, ..ProptestConfig::default() })]

    /// Both parsers accept the same selectors, and a selector both accept
    /// matches the same label sets.
    #[test]
    fn the_simulator_and_the_engine_read_selectors_alike(
        s in selector(),
        sets in prop::collection::vec(labels(), 1..6),
    ) {
        let sim = SimSelector::parse(&s);
        let engine = s.parse::<EngineSelector>();
        prop_assert_eq!(
            sim.is_ok(),
            engine.is_ok(),
            "{:?}: simulator {:?}, engine {:?}",
            s,
            sim.as_ref().err().map(|e| &e.message),
            engine.as_ref().err().map(|e| &e.reason)
        );
        if let (Ok(sim), Ok(engine)) = (sim, engine) {
            prop_assert_eq!(sim.is_empty(), engine.is_empty(), "{:?}", s);
            for set in &sets {
                let pairs: Vec<(String, String)> = set.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(
                    sim.matches(&pairs),
                    engine.matches_labels(|k| set.get(k).map(String::as_str)),
                    "{:?} on {:?}",
                    s,
                    set
                );
            }
        }
    }
}

/// The generators reach both outcomes and every kind of requirement, so the
/// property above compares more than empty selectors and parse errors.
#[test]
fn the_comparison_covers_accepted_rejected_and_matching_selectors() {
    for s in [
        "app=web",
        "app==web,tier!=db",
        "app in (web, api),tier notin (db)",
        "a,!b.c",
        "example.com/app>2,x-y_z<10",
        "app in (,web)",
        "in=x",
        "a=in",
        "a in (in)",
        "a,!notin",
        "a in ( )",
        "a=\0b",
    ] {
        assert!(SimSelector::parse(s).is_ok() && s.parse::<EngineSelector>().is_ok(), "{s}");
    }
    // `()` holds the empty value: it matches an empty label, not a missing one.
    let set: BTreeMap<String, String> = [("a".to_owned(), String::new())].into();
    let pairs = vec![("a".to_owned(), String::new())];
    assert!(SimSelector::parse("a in ()").unwrap().matches(&pairs));
    assert!("a in ()".parse::<EngineSelector>().unwrap().matches_labels(|k| set.get(k).map(String::as_str)));
    for s in ["a in (x", "x>y", "-bad", "a,,b", "é=x", "a=\u{1}", "Ex.com/a", "a=b\u{a0}", "a=\u{b}"] {
        assert!(SimSelector::parse(s).is_err() && s.parse::<EngineSelector>().is_err(), "{s}");
    }
}
